"""The ceiling the benchmarks compare with: ``redis-benchmark`` running EVALSHA of a
trivial script from one client, unpipelined and pipelined, against the same server; and
the same unpipelined round trips from a bare asyncio protocol, the floor under any asyncio
client (it parses nothing and only waits for each reply)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time

from jobqueue.testing import redis_command


def redis_benchmark_ceiling(port: int, n: int) -> dict[str, float] | None:
    """Requests/s of EVALSHA ``return 1`` from one redis-benchmark client."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return None
    sha = redis_command(port, "SCRIPT", "LOAD", "return 1")
    assert isinstance(sha, bytes)
    rates = {}
    for label, pipeline, requests in (("unpipelined", 1, n), ("pipelined_50", 50, n * 10)):
        out = subprocess.run(
            [
                tool,
                "-p",
                str(port),
                "-c",
                "1",
                "-n",
                str(requests),
                "-P",
                str(pipeline),
                "-q",
                "EVALSHA",
                sha.decode(),
                "0",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        match = re.findall(r"([\d.]+) requests per second", out)
        if match:
            rates[label] = float(match[-1])
    rates["bare_asyncio"] = asyncio.run(_bare_asyncio_rate(port, sha, n))
    return rates


class _OneReply(asyncio.Protocol):
    """Completes `waiter` when a whole `:1` reply has arrived."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.endswith(b"\r\n") and self.waiter is not None:
            self.buffer = b""
            self.waiter.set_result(None)


async def _bare_asyncio_rate(port: int, sha: bytes, n: int) -> float:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(_OneReply, "127.0.0.1", port)
    request = b"*3\r\n$7\r\nEVALSHA\r\n$40\r\n" + sha + b"\r\n$1\r\n0\r\n"
    started = time.perf_counter()
    for _ in range(n):
        protocol.waiter = loop.create_future()
        transport.write(request)
        await protocol.waiter
    elapsed = time.perf_counter() - started
    transport.close()
    return n / elapsed
