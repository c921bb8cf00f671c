"""Latency benchmark: a producer adds jobs at a steady rate into an idle worker process;
reports p50 / p99 / max from enqueue (Redis clock, the job's ``created_at``) to processor
start (the job's ``processed_at``).

    .venv/bin/python benches/latency.py [--rate 1000] [--seconds 5]

Writes ``benches/results/latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from _noop_worker import start_noop_worker

from jobqueue import JobQueue, JobStatus
from jobqueue.testing import RedisServer

QUEUE = "bench-latency"


def percentile(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))])


async def measure(url: str, rate: int, seconds: float) -> dict[str, float]:
    process, stop = await start_noop_worker(url, QUEUE, 50)
    total = int(rate * seconds)
    async with JobQueue(QUEUE, redis=url) as queue:
        await queue.clear()
        ids: list[str] = []
        started = time.perf_counter()
        for i in range(total):
            # Paced against the clock, so a slow add does not lower the rate.
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ids.append(await queue.add_job("noop", {"i": i}, remove_on_complete=False))
        for job_id in ids:
            await queue.wait_for(job_id, 60_000)
        jobs = await queue.get_jobs_by_status(JobStatus.COMPLETED, total)
    stop.set()
    process.join()
    waits = [j.processed_at - j.created_at for j in jobs if j.processed_at is not None]
    return {
        "jobs": len(waits),
        "p50_ms": percentile(waits, 50),
        "p99_ms": percentile(waits, 99),
        "max_ms": float(max(waits)),
        "mean_ms": statistics.fmean(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with RedisServer() as server:
        result = asyncio.run(measure(server.url, args.rate, args.seconds))
    print(
        f"latency at {args.rate} jobs/s: p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms, max {result['max_ms']:.0f} ms "
        f"({result['jobs']} jobs; enqueue to start, Redis clock, ms resolution)"
    )
    out = Path(__file__).parent / "results" / "latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rate": args.rate, **result}, indent=2))


if __name__ == "__main__":
    main()
