"""Enqueue benchmark: single awaited ``add_job`` and bulk ``add_jobs``, beside the ceiling
of a bare single-connection EVALSHA round trip (``redis-benchmark``) on the same server.

    .venv/bin/python benches/enqueue.py [--jobs 20000] [--batch 1000]

Prints a table and writes ``benches/results/enqueue.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from _ceiling import redis_benchmark_ceiling

from jobqueue import JobQueue
from jobqueue.testing import RedisServer

PAYLOAD = {"s": "x" * 100}


async def single(url: str, n: int) -> float:
    async with JobQueue("bench-single", redis=url) as queue:
        await queue.clear()
        started = time.perf_counter()
        for i in range(n):
            await queue.add_job("noop", {"i": i, **PAYLOAD})
        elapsed = time.perf_counter() - started
        await queue.clear()
    return n / elapsed


async def bulk(url: str, n: int, batch: int) -> float:
    async with JobQueue("bench-bulk", redis=url) as queue:
        await queue.clear()
        started = time.perf_counter()
        for start in range(0, n, batch):
            await queue.add_jobs(
                [("noop", {"i": i, **PAYLOAD}) for i in range(start, min(n, start + batch))]
            )
        elapsed = time.perf_counter() - started
        await queue.clear()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with RedisServer() as server:
        singles, bulks = [], []
        for _ in range(args.repeats):
            singles.append(asyncio.run(single(server.url, args.jobs)))
            bulks.append(asyncio.run(bulk(server.url, args.jobs, args.batch)))
        ceiling = redis_benchmark_ceiling(server.port, args.jobs)
    result = {
        "jobs": args.jobs,
        "batch": args.batch,
        "single_add_job_per_s": statistics.median(singles),
        "bulk_add_jobs_per_s": statistics.median(bulks),
        "evalsha_round_trips_per_s": ceiling,
    }
    print(f"single add_job      : {result['single_add_job_per_s']:>10,.0f} jobs/s")
    print(f"add_jobs (batch {args.batch}): {result['bulk_add_jobs_per_s']:>10,.0f} jobs/s")
    if ceiling:
        for label, rate in ceiling.items():
            print(f"bare EVALSHA {label:<12}: {rate:>10,.0f} round trips/s")
        if "unpipelined" in ceiling:
            ratio = result["single_add_job_per_s"] / ceiling["unpipelined"]
            print(f"single add_job / redis-benchmark EVALSHA: {ratio:.0%}")
            floor = ceiling["bare_asyncio"] / ceiling["unpipelined"]
            print(f"bare asyncio EVALSHA / redis-benchmark EVALSHA: {floor:.0%}")
    out = Path(__file__).parent / "results" / "enqueue.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
