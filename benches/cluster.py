"""Cluster benchmark: the same queue work on one redis-server and on a 3-primary cluster.

    .venv/bin/python benches/cluster.py [--jobs 20000] [--batch 1000] [--repeats 3]

Per topology, alternating (single, cluster, single, ...) so the machine's noise hits both:

- bulk add: ``--jobs`` jobs through ``add_jobs`` in batches of ``--batch``;
- single add: ``--jobs`` / 4 awaited ``add_job`` calls one by one (on one server they go
  over the event loop's own socket; on a cluster over the native connection);
- drain: ``--jobs`` pre-added no-op jobs through one worker process (concurrency 50);
- drain of 3 queues: 3 queues (on a cluster one per primary) of ``--jobs`` / 3 jobs each,
  one worker process per queue, all at once: the aggregate rate.

For each step the CPU time redis-server used (all nodes of the cluster), per job: for
the drain steps it covers adding the jobs too.

Everything runs on this machine's cores, shared by the servers, the workers and this
process: the cluster figures show the cost of the cluster client, not a scale-out.
Prints medians and writes ``benches/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _noop_worker import start_noop_worker, wait_drained

from jobqueue import JobQueue
from jobqueue.testing import RedisServer
from jobqueue.testing_cluster import RedisCluster

PAYLOAD = {"s": "x" * 100}
#: Queue names, one per primary of the benchmark cluster.
Names = list[str]


async def _fill(queue: JobQueue, jobs: int, batch: int) -> None:
    for start in range(0, jobs, batch):
        await queue.add_jobs(
            [("noop", {"i": i, **PAYLOAD}) for i in range(start, min(jobs, start + batch))]
        )


async def bulk_add(url: str, names: Names, jobs: int, batch: int) -> float:
    async with JobQueue(names[0], redis=url) as queue:
        await queue.clear()
        started = time.perf_counter()
        await _fill(queue, jobs, batch)
        rate = jobs / (time.perf_counter() - started)
        await queue.clear()
    return rate


async def single_add(url: str, names: Names, jobs: int, batch: int) -> float:
    n = jobs // 4
    async with JobQueue(names[0], redis=url) as queue:
        await queue.clear()
        started = time.perf_counter()
        for i in range(n):
            await queue.add_job("noop", {"i": i, **PAYLOAD})
        rate = n / (time.perf_counter() - started)
        await queue.clear()
    return rate


async def drain(url: str, names: Names, jobs: int, batch: int) -> float:
    return await _drain_all(url, names[:1], jobs, batch)


async def drain_three(url: str, names: Names, jobs: int, batch: int) -> float:
    return await _drain_all(url, names, jobs // len(names), batch)


async def _drain_all(url: str, names: Names, per_queue: int, batch: int) -> float:
    queues = [JobQueue(name, redis=url) for name in names]
    workers = []
    try:
        for queue in queues:
            await queue.clear()
            await _fill(queue, per_queue, batch)
            await queue.pause()  # workers start idle; the clock starts at resume
            workers.append(await start_noop_worker(url, queue.name, 50))
        started = time.perf_counter()
        for queue in queues:
            await queue.resume()
        await asyncio.gather(*(wait_drained(queue) for queue in queues))
        return per_queue * len(queues) / (time.perf_counter() - started)
    finally:
        for process, stop in workers:
            stop.set()
            process.join()
        for queue in queues:
            await queue.clear()
            await queue.close()


STEPS: dict[str, Callable[[str, Names, int, int], Awaitable[float]]] = {
    "bulk_add_jobs_per_s": bulk_add,
    "single_add_jobs_per_s": single_add,
    "drain_jobs_per_s": drain,
    "drain_3_queues_jobs_per_s": drain_three,
}


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes used so far, from /proc (Linux)."""
    ticks = 0
    for pid in pids:
        # The fields after the command name (in parentheses): utime and stime are 12 and 13.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    topologies = ("single", "cluster")
    rates: dict[str, dict[str, list[float]]] = {t: {step: [] for step in STEPS} for t in topologies}
    cpu_us: dict[str, dict[str, list[float]]] = {
        t: {step: [] for step in STEPS} for t in topologies
    }
    with RedisServer() as server, RedisCluster() as cluster:
        names = cluster.queue_names_per_primary("bench")
        urls = {"single": server.url, "cluster": cluster.url}
        pids = {"single": [server.pid], "cluster": [s.pid for s in cluster.servers]}
        for _ in range(args.repeats):
            for step, run in STEPS.items():
                for topology, url in urls.items():
                    jobs = args.jobs // 4 if step == "single_add_jobs_per_s" else args.jobs
                    before = _cpu_s([p for p in pids[topology] if p is not None])
                    rate = asyncio.run(run(url, names, args.jobs, args.batch))
                    used = _cpu_s([p for p in pids[topology] if p is not None]) - before
                    rates[topology][step].append(rate)
                    cpu_us[topology][step].append(used / jobs * 1e6)
    for step in STEPS:
        single, on_cluster = (statistics.median(rates[t][step]) for t in topologies)
        cpu_single, cpu_cluster = (statistics.median(cpu_us[t][step]) for t in topologies)
        print(
            f"{step:<27}: single {single:>9,.0f}  cluster {on_cluster:>9,.0f} jobs/s "
            f"({on_cluster / single:.0%}); redis-server CPU per job {cpu_single:.1f} / "
            f"{cpu_cluster:.1f} us"
        )
    out = Path(__file__).parent / "results" / "cluster.json"
    out.parent.mkdir(exist_ok=True)
    result = {"jobs": args.jobs, "batch": args.batch, "rates": rates, "cpu_us_per_job": cpu_us}
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
