"""Partitioned queues: one queue drained with partitions=1 and partitions=3 on a 3-primary
cluster (the 3 partitions on the 3 primaries).

    .venv/bin/python benches/partitions.py [--jobs 30000] [--workers 2] [--repeats 3]

Per round, alternating: bulk add ``--jobs`` jobs (``add_jobs``, batches of 1,000), then
drain them with ``--workers`` worker processes (``--concurrency``, default 60, each: one
fetch loop shared by all partitions). Reports jobs/s of the add and of the drain, and
the CPU time each primary's redis-server spent per job (add and drain together).
Everything shares this machine's cores: see the README for what that means for the
figures. Prints medians and writes ``benches/results/partitions.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from _noop_worker import start_noop_worker, wait_drained
from cluster import PAYLOAD, _cpu_s

from jobqueue import JobQueue
from jobqueue.testing import redis_command
from jobqueue.testing_cluster import RedisCluster

BATCH = 1_000


async def run(
    url: str, name: str, partitions: int, jobs: int, workers: int, concurrency: int
) -> tuple[float, float]:
    """(bulk add jobs/s, drain jobs/s)."""
    async with JobQueue(name, redis=url, partitions=partitions) as queue:
        await queue.clear()
        await queue.pause()  # workers start idle; the drain clock starts at resume
        started = time.perf_counter()
        for start in range(0, jobs, BATCH):
            await queue.add_jobs(
                [("noop", {"i": i, **PAYLOAD}) for i in range(start, min(jobs, start + BATCH))]
            )
        add_rate = jobs / (time.perf_counter() - started)
        procs = [
            await start_noop_worker(url, name, concurrency, partitions=partitions)
            for _ in range(workers)
        ]
        try:
            started = time.perf_counter()
            await queue.resume()
            await wait_drained(queue)
            drain_rate = jobs / (time.perf_counter() - started)
        finally:
            for process, stop in procs:
                stop.set()
                process.join()
            await queue.clear()
    return add_rate, drain_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=60, help="per worker process (all partitions)"
    )
    args = parser.parse_args()
    results: dict[int, dict[str, list[float]]] = {}
    with RedisCluster() as cluster:
        name = cluster.partitioned_name("bench-parts", 3)
        ports = cluster.primary_ports()
        pids = {s.port: s.pid for s in cluster.servers}
        for _ in range(args.repeats):
            for partitions in (1, 3):
                before = {port: _cpu_s([pids[port]]) for port in ports if pids[port]}
                add, drain = asyncio.run(
                    run(cluster.url, name, partitions, args.jobs, args.workers, args.concurrency)
                )
                row = results.setdefault(partitions, {})
                row.setdefault("add_jobs_per_s", []).append(add)
                row.setdefault("drain_jobs_per_s", []).append(drain)
                for i, port in enumerate(ports):
                    used = _cpu_s([pids[port]]) - before[port]
                    row.setdefault(f"node{i}_cpu_us_per_job", []).append(used / args.jobs * 1e6)
                # A queue's partition count is stored: start the next round anew.
                cluster_flush(cluster)
    for partitions, row in results.items():
        medians = {key: statistics.median(values) for key, values in row.items()}
        per_node = [medians[f"node{i}_cpu_us_per_job"] for i in range(len(ports))]
        nodes = " / ".join(f"{cpu:.1f}" for cpu in per_node)
        print(
            f"partitions={partitions}: add {medians['add_jobs_per_s']:>8,.0f} jobs/s, drain "
            f"{medians['drain_jobs_per_s']:>8,.0f} jobs/s; redis-server CPU per job by node "
            f"{nodes} us (total {sum(per_node):.1f})"
        )
    out = Path(__file__).parent / "results" / "partitions.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"jobs": args.jobs, "workers": args.workers, "results": results}, indent=2)
    )


def cluster_flush(cluster: RedisCluster) -> None:
    for port in cluster.primary_ports():
        redis_command(port, "FLUSHALL")


if __name__ == "__main__":
    main()
