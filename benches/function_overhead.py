"""Per-call overhead of the scripts' Function library (docs/redis-layout.md, "How the
scripts run"), counted in redis-server instructions under callgrind like
``redis_cost.py``: FCALL of two of the library's functions as built, and as variants of
its own source loaded beside it (no ``resetCallState``; a reset that replaces only the
tables a call used).

    .venv/bin/python benches/function_overhead.py

A measuring tool for changes to the library's entry (``enter``, ``resetCallState``), not
part of ``make bench``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from redis_cost import CountedRedis

from jobqueue import JobQueue
from jobqueue.testing import _encode, _Reader, redis_command

CALLS = 1000
RESET = """local function resetCallState()
  optsRefs, optsTexts = {}, {}
  anyParked = nil
  staged, policies = {}, {}
  eventParts, eventCount, eventBytes = {}, 0, 0
  runIds, runEvent, runName, runAttempts = nil, nil, nil, nil
  eventNames = {}
end"""
LAZY_RESET = """local function resetCallState()
  if next(optsRefs) then optsRefs = {} end
  if next(optsTexts) then optsTexts = {} end
  anyParked = nil
  if next(staged) then staged = {} end
  if next(policies) then policies = {} end
  if eventCount > 0 or next(eventParts) then eventParts = {} end
  eventCount, eventBytes = 0, 0
  runIds, runEvent, runName, runAttempts = nil, nil, nil, nil
  if next(eventNames) then eventNames = {} end
end"""


def flat(value: object) -> Iterator[object]:
    if isinstance(value, list):
        for item in value:
            yield from flat(item)
    else:
        yield value


async def measure(server: CountedRedis) -> None:
    port = server.server.port
    queue = JobQueue("overhead", redis=server.server.url)
    await queue.get_stats()  # connects: loads the library
    items = flat(redis_command(port, "FUNCTION", "LIST", "WITHCODE"))
    code = next(i for i in items if isinstance(i, bytes) and i.startswith(b"#!lua")).decode()
    library = re.search(r"name=(jobqueue_[0-9a-f]+)", code)
    prefix = re.search(r"function_name = '(jq_[0-9a-f]+_)", code)
    assert library and prefix and RESET in code
    variants = {
        "as built": code,
        "no reset": code.replace("  K = k\n  resetCallState()\nend", "  K = k\nend"),
        "lazy reset": code.replace(RESET, LAZY_RESET),
    }
    base = "jq:{overhead}:"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = _Reader(sock)
        for i, (name, source) in enumerate(variants.items()):
            names = f"v{i}_"
            source = source.replace(library.group(1), f"variant{i}")
            source = source.replace(prefix.group(1), names)
            redis_command(port, "FUNCTION", "LOAD", "REPLACE", source)
            for script in ("health", "get_stats"):
                cmd = _encode(["FCALL", names + script, "1", base + "meta", base])
                sock.sendall(cmd)
                reader.reply()

                async def phase(cmd: bytes = cmd) -> None:
                    sock.sendall(cmd * CALLS)
                    for _ in range(CALLS):
                        reader.reply()

                total = await server.count(f"v{i}_{script}", phase)
                print(f"{name:<11} {script:<10} {total / CALLS:>9,.0f} instructions per call")
    await queue.close()


def main() -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("function_overhead.py needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as out:
        server = CountedRedis(valgrind, Path(out))
        try:
            asyncio.run(measure(server))
        finally:
            server.server.stop()


if __name__ == "__main__":
    main()
