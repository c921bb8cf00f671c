"""What ``QueueSettings(durability=...)`` costs: bulk add, single add and drain on a
primary with one replica, without and with ``Durability(replicas=1, timeout=100)``.

    .venv/bin/python benches/durability.py [--jobs 20000] [--repeats 3]

Prints a table and writes ``benches/results/durability.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from _noop_worker import start_noop_worker, wait_drained

from jobqueue import Durability, JobQueue, QueueSettings
from jobqueue.testing import HOST, RedisServer, redis_command

QUEUE = "bench-durability"
PAYLOAD = {"s": "x" * 100}
BATCH = 1000
SINGLES = 2000


async def one_run(url: str, jobs: int, settings: QueueSettings) -> dict[str, float]:
    async with JobQueue(QUEUE, redis=url, settings=settings) as queue:
        await queue.clear()
        started = time.perf_counter()
        for i in range(SINGLES):
            await queue.add_job("noop", {"i": i, **PAYLOAD})
        single = SINGLES / (time.perf_counter() - started)
        await queue.clear()
        await queue.pause()  # the jobs wait for the drain below
        started = time.perf_counter()
        for start in range(0, jobs, BATCH):
            await queue.add_jobs(
                [("noop", {"i": i, **PAYLOAD}) for i in range(start, min(jobs, start + BATCH))]
            )
        bulk = jobs / (time.perf_counter() - started)
        process, stop = await start_noop_worker(url, QUEUE, 50, settings)
        started = time.perf_counter()
        await queue.resume()
        await wait_drained(queue)
        drain = jobs / (time.perf_counter() - started)
        stop.set()
        process.join()
    return {"single_add": single, "bulk_add": bulk, "drain": drain}


def wait_in_sync(port: int) -> None:
    deadline = time.monotonic() + 30
    while b"master_link_status:up" not in _bytes(redis_command(port, "INFO", "replication")):
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not sync within 30 s")
        time.sleep(0.05)


def _bytes(reply: object) -> bytes:
    return reply if isinstance(reply, bytes) else b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    variants = {
        "none": QueueSettings(),
        "replicas=1,timeout=100": QueueSettings(durability=Durability(replicas=1, timeout=100)),
    }
    result: dict[str, dict[str, float]] = {}
    with RedisServer(extra_args=["--repl-diskless-sync-delay", "0"]) as primary:
        replica_args = ["--replicaof", HOST, str(primary.port)]
        with RedisServer(extra_args=replica_args) as replica:
            wait_in_sync(replica.port)
            for name, settings in variants.items():
                runs = [
                    asyncio.run(one_run(primary.url, args.jobs, settings))
                    for _ in range(args.repeats)
                ]
                result[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{'durability':<24}{'single add':>14}{'bulk add':>14}{'drain':>14}   (jobs/s)")
    for name, rates in result.items():
        print(
            f"{name:<24}{rates['single_add']:>14,.0f}{rates['bulk_add']:>14,.0f}"
            f"{rates['drain']:>14,.0f}"
        )
    out = Path(__file__).parent / "results" / "durability.json"
    out.write_text(json.dumps({"jobs": args.jobs, "jobs_per_s": result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
