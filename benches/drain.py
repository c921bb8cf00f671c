"""Drain benchmark: N pre-enqueued no-op jobs through one worker process.

    .venv/bin/python benches/drain.py [--jobs 20000] [--concurrency 50]

The worker runs in its own process (as in production); this process enqueues, starts it
and watches the queue until it is empty. Prints jobs/s and writes
``benches/results/drain.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from _noop_worker import start_noop_worker, wait_drained

from jobqueue import JobQueue
from jobqueue.testing import RedisServer

QUEUE = "bench-drain"


async def one_run(url: str, jobs: int, concurrency: int) -> float:
    async with JobQueue(QUEUE, redis=url) as queue:
        await queue.clear()
        for start in range(0, jobs, 1000):
            await queue.add_jobs(
                [("noop", {"i": i, "s": "x" * 100}) for i in range(start, min(jobs, start + 1000))]
            )
        await queue.pause()  # the worker starts idle; the clock starts at resume
        process, stop = await start_noop_worker(url, QUEUE, concurrency)
        started = time.perf_counter()
        await queue.resume()
        await wait_drained(queue)
        elapsed = time.perf_counter() - started
        stop.set()
        process.join()
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with RedisServer() as server:
        rates = [
            asyncio.run(one_run(server.url, args.jobs, args.concurrency))
            for _ in range(args.repeats)
        ]
    result = {"jobs": args.jobs, "concurrency": args.concurrency, "drain_jobs_per_s": rates}
    print(
        f"drain: median {statistics.median(rates):,.0f} jobs/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    out = Path(__file__).parent / "results" / "drain.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
