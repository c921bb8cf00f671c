"""A live reshard: the queue's slot moves to another primary (IMPORTING/MIGRATING, MIGRATE
in small batches, SETSLOT NODE, as ``redis-cli --cluster reshard`` does) while producers
add and two workers process. Every added job completes, exactly once, and none is lost;
the figures (the longest add while the slot moved) are printed for docs/guarantees.md."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from jobqueue import JobQueue, JobStatus
from jobqueue.job import Job
from jobqueue.testing import redis_command
from jobqueue.testing_cluster import RedisCluster

from ..helpers import eventually


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as found:
        yield found


async def _true(value: bool) -> bool:
    return value


async def test_a_live_reshard_loses_no_job(cluster: RedisCluster) -> None:
    name = f"reshard-{uuid.uuid4().hex[:6]}"
    slot = cluster.slot_of(f"{{{name}}}")
    source = cluster.owner(slot)
    target = next(p for p in cluster.primary_ports() if p != source)
    ran: list[int] = []

    async def record(job: Job[int]) -> None:
        ran.append(job.data)

    workers = [JobQueue(name, redis=cluster.url) for _ in range(2)]
    producer = JobQueue(name, redis=cluster.url)
    added: list[int] = []
    slowest_add = 0.0
    moving = asyncio.Event()
    try:
        for worker in workers:
            worker.process("n", record)
            await worker.start_worker()

        async def produce() -> None:
            nonlocal slowest_add
            n = 0
            while n < 6000:
                started = time.monotonic()
                if n % 200 < 100:  # batches and single adds, both through the reshard
                    await producer.add_jobs([("n", n + i) for i in range(50)])
                    added.extend(range(n, n + 50))
                    n += 50
                else:
                    await asyncio.gather(*(producer.add_job("n", n + i) for i in range(10)))
                    added.extend(range(n, n + 10))
                    n += 10
                if moving.is_set():
                    slowest_add = max(slowest_add, time.monotonic() - started)
                await asyncio.sleep(0.002)

        producing = asyncio.create_task(produce())
        await eventually(lambda: _true(len(ran) >= 1000), timeout=20)
        moving.set()
        started = time.monotonic()
        moved = await asyncio.to_thread(
            cluster.move_slot, slot, target, between_batches=lambda: time.sleep(0.002)
        )
        took = time.monotonic() - started
        moving.clear()
        await producing
        await eventually(lambda: _true(len(ran) >= len(added)), timeout=60)
        stats = await producer.get_stats()
        refusals = {p: _errorstats(p) for p in (source, target)}
        print(
            f"\nreshard: refusals by node {refusals}; {moved} keys moved in {took:.2f} s "
            f"while {len(added)} jobs were added; "
            f"slowest add during the move {slowest_add * 1000:.0f} ms; "
            f"ran {len(ran)} times for {len(set(ran))} jobs"
        )
        assert sorted(ran) == sorted(added)  # every job ran, and exactly once
        assert (stats.completed, stats.waiting, stats.active) == (len(added), 0, 0)
        assert moved > 0
        assert cluster.owner(slot) == target
        assert redis_command(source, "CLUSTER", "COUNTKEYSINSLOT", str(slot)) == 0
        # The workers' blocking waits followed the slot: a new job is taken at once.
        late = await producer.add_job("n", -1)
        info = await producer.wait_for(late, 5_000)
        assert info.status is JobStatus.COMPLETED
    finally:
        for queue in [*workers, producer]:
            await queue.close(timeout=5000)


def _errorstats(port: int) -> dict[str, int]:
    """The node's count of error replies by code (ASK, TRYAGAIN, ...) since it started."""
    reply = redis_command(port, "INFO", "errorstats")
    text = reply.decode() if isinstance(reply, bytes) else ""
    found = {}
    for line in text.splitlines():
        if line.startswith("errorstat_"):
            code, _, rest = line.removeprefix("errorstat_").partition(":")
            found[code] = int(rest.split("=")[1])
    return found
