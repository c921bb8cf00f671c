"""Redis instructions per job of a partitioned queue against an unpartitioned one, on one
redis-server under callgrind (``benches/redis_cost.py``'s counter; needs valgrind):

    .venv/bin/python benches/partitions_cost.py [--jobs 6000] [--limits] [--dumps DIR]

Bulk add (batches of 1,000) and drain (one worker, concurrency 50 x partitions, one fetch
loop for all partitions) with
partitions=1, 3, 1, 3 in turn (the drain's count moves with how the batches fall, so each
runs twice). Counts user-space instructions only: the kernel's cost per call (a partitioned
queue makes more, smaller calls) is in ``benches/partitions.py``'s CPU figures.
``--limits`` gives the queue a rate limit and a global concurrency too high to hold
anything back (their cost only: the calls to partition 0 that take starts and slots).
``--dumps DIR`` keeps callgrind's dumps there (one per phase, named in its ``desc: Trigger``
line, e.g. ``dump cost-3-ab12cd-drain``), for ``callgrind_annotate --inclusive=yes``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from redis_cost import PAYLOAD, CountedRedis, add_in_batches

from jobqueue import JobQueue, QueueEvent, RateLimit, WorkerConfig

#: ``--limits``: a billion starts a second and a million slots never hold a job back.
UNREACHED_RATE = RateLimit(1_000_000_000, 1000)
UNREACHED_SLOTS = 1_000_000


async def run(
    server: CountedRedis, partitions: int, jobs: int, concurrency: int | None, limits: bool
) -> tuple[float, float]:
    """(add, drain) instructions per job."""
    name = f"cost-{partitions}-{secrets.token_hex(3)}"
    queue = JobQueue(
        name,
        redis=server.server.url,
        worker=WorkerConfig(
            concurrency=concurrency or 50 * partitions,
            limiter=UNREACHED_RATE if limits else None,
        ),
        partitions=partitions,
    )
    drained = asyncio.Event()
    done = 0

    def completed(job: Any) -> None:
        nonlocal done
        done += 1
        if done == jobs:
            drained.set()

    queue.on(QueueEvent.JOB_COMPLETED, completed)
    queue.process("noop", lambda job: None)
    await queue.add_jobs([("noop", PAYLOAD)] * partitions)  # connects, uncounted
    await queue.clear()
    if limits:
        await queue.set_global_concurrency(UNREACHED_SLOTS)

    async def bulk() -> None:
        await add_in_batches(queue, jobs)

    async def drain() -> None:
        await queue.start_worker()
        await drained.wait()

    add = await server.count(f"{name}-add", bulk) / jobs
    drain_cost = await server.count(f"{name}-drain", drain) / jobs
    await queue.close()
    return add, drain_cost


async def measure(jobs: int, concurrency: int | None, limits: bool, dumps: Path | None) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None or shutil.which("callgrind_control") is None:
        sys.exit("partitions_cost.py needs valgrind (apt-get install valgrind)")
    with contextlib.ExitStack() as stack:
        if dumps is None:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            out_dir = dumps  # made absolute by main()
        server = CountedRedis(valgrind, out_dir)
        try:
            for partitions in (1, 3, 1, 3):
                add, drain = await run(server, partitions, jobs, concurrency, limits)
                print(
                    f"partitions={partitions}: add {add:>8,.0f}, drain {drain:>8,.0f} "
                    f"redis-server instructions per job",
                    flush=True,
                )
            print("script calls per phase:", ", ".join(f"{k} {v}" for k, v in server.calls.items()))
        finally:
            server.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=6_000)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="the worker's (default: 50 x partitions)"
    )
    parser.add_argument(
        "--limits", action="store_true", help="with a rate limit and a global concurrency"
    )
    parser.add_argument(
        "--dumps",
        type=Path,
        help="keep callgrind's dumps (one per phase) in this directory, for callgrind_annotate",
    )
    args = parser.parse_args()
    dumps = None
    if args.dumps is not None:
        dumps = args.dumps.resolve()
        dumps.mkdir(parents=True, exist_ok=True)
    asyncio.run(measure(args.jobs, args.concurrency, args.limits, dumps))


if __name__ == "__main__":
    main()
