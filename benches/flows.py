"""Flows benchmark: 2,000 flows of one parent with 10 children against 22,000 plain jobs.

    .venv/bin/python benches/flows.py [--flows 2000] [--children 10] [--rounds 3]
        [--concurrency 50] [--in-flight 32]

Per round, alternating so that the machine's noise hits both alike: the plain jobs added
with ``add_jobs`` (batches of 1,000) and drained by one no-op worker process; then the
same number of jobs as flows, added with ``add_flow`` (``--in-flight`` calls at once, one
script call each) and drained until every parent completed. Prints jobs/s of each and
their ratios (the issue's bar: drain >= 70 %, add >= 50 %), and writes
``benches/results/flows.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from _noop_worker import start_noop_worker

from jobqueue import Flow, JobQueue
from jobqueue.testing import RedisServer

QUEUE = "bench-flows"
PAYLOAD = {"s": "x" * 100}


async def drain(queue: JobQueue, url: str, concurrency: int) -> float:
    """Seconds for one worker process to run everything (started paused, timed from
    resume)."""
    process, stop = await start_noop_worker(url, QUEUE, concurrency)
    started = time.perf_counter()
    await queue.resume()
    while True:
        stats = await queue.get_stats()
        if stats.paused + stats.waiting + stats.active + stats.waiting_children == 0:
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    process.join()
    return elapsed


async def plain_round(url: str, jobs: int, concurrency: int) -> tuple[float, float]:
    async with JobQueue(QUEUE, redis=url) as queue:
        await queue.clear()
        await queue.pause()
        started = time.perf_counter()
        for first in range(0, jobs, 1000):
            await queue.add_jobs([("noop", PAYLOAD)] * min(1000, jobs - first))
        added = time.perf_counter() - started
        return jobs / added, jobs / await drain(queue, url, concurrency)


async def flows_round(
    url: str, flows: int, children: int, concurrency: int, in_flight: int
) -> tuple[float, float]:
    jobs = flows * (children + 1)
    async with JobQueue(QUEUE, redis=url) as queue:
        await queue.clear()
        await queue.pause()
        slots = asyncio.Semaphore(in_flight)

        async def add_one() -> None:
            async with slots:
                await queue.add_flow(
                    Flow("noop", PAYLOAD, [Flow("noop", PAYLOAD) for _ in range(children)])
                )

        started = time.perf_counter()
        await asyncio.gather(*(add_one() for _ in range(flows)))
        added = time.perf_counter() - started
        assert (await queue.get_stats()).waiting_children == flows
        rate = jobs / await drain(queue, url, concurrency)
        assert (await queue.get_stats()).failed == 0
        return jobs / added, rate


async def main(args: argparse.Namespace) -> None:
    jobs = args.flows * (args.children + 1)
    results: dict[str, list[float]] = {
        "plain_add": [],
        "plain_drain": [],
        "flow_add": [],
        "flow_drain": [],
    }
    with RedisServer() as server:
        for _ in range(args.rounds):
            add, run = await plain_round(server.url, jobs, args.concurrency)
            results["plain_add"].append(add)
            results["plain_drain"].append(run)
            add, run = await flows_round(
                server.url, args.flows, args.children, args.concurrency, args.in_flight
            )
            results["flow_add"].append(add)
            results["flow_drain"].append(run)
    median = {name: statistics.median(values) for name, values in results.items()}
    drain_ratio = median["flow_drain"] / median["plain_drain"]
    add_ratio = median["flow_add"] / median["plain_add"]
    print(f"{jobs} jobs: {args.flows} flows of 1 parent + {args.children} children")
    print(f"plain add_jobs   : {median['plain_add']:>9,.0f} jobs/s")
    print(f"add_flow         : {median['flow_add']:>9,.0f} jobs/s  ({add_ratio:.0%} of bulk add)")
    print(f"plain drain      : {median['plain_drain']:>9,.0f} jobs/s")
    print(f"flows drain      : {median['flow_drain']:>9,.0f} jobs/s  ({drain_ratio:.0%} of plain)")
    out = Path(__file__).parent / "results" / "flows.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {"jobs": jobs, "median_jobs_per_s": median, "runs": results,
             "drain_ratio": drain_ratio, "add_ratio": add_ratio},
            indent=2,
        )
        + "\n"
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--children", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
