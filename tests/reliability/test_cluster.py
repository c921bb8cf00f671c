"""A live reshard, durability and failovers on a Redis Cluster.

The reshard: the queue's slot moves to another primary (IMPORTING/MIGRATING, MIGRATE in
small batches, SETSLOT NODE, as ``redis-cli --cluster reshard`` does) while a producer
adds and two workers process. Every added job completes, exactly once, and none is lost.
The failovers reuse the Sentinel test's producers and worker processes. The figures are
printed for docs/guarantees.md."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue import Durability, JobQueue, JobStatus, QueueSettings
from jobqueue.errors import NotReplicatedError
from jobqueue.job import Job
from jobqueue.testing import redis_command
from jobqueue.testing_cluster import RedisCluster

from ..helpers import eventually, stop_processes
from . import test_sentinel as sentinel_test


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as found:
        yield found


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("tool", ["migrate", "redis-cli"])
async def test_a_live_reshard_loses_no_job(cluster: RedisCluster, tool: str) -> None:
    """``migrate``: the fixture's move_slot (small batches, a pause between them, so the
    move is long); ``redis-cli``: ``redis-cli --cluster reshard`` moving one slot, the
    lowest of its node, which is the queue's."""
    source, target = cluster.primary_ports()[:2]
    slot = cluster.first_slot(source)
    name = cluster.name_in_slot(f"reshard-{uuid.uuid4().hex[:6]}", slot)
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
        if tool == "migrate":
            moved = await asyncio.to_thread(
                cluster.move_slot, slot, target, between_batches=lambda: time.sleep(0.002)
            )
        else:
            moved = _keys_in(source, slot)
            await asyncio.to_thread(cluster.reshard_with_cli, source, target)
        took = time.monotonic() - started
        moving.clear()
        await producing
        await eventually(lambda: _true(len(ran) >= len(added)), timeout=60)

        # A processor records its job before the worker acks it: the last acks may still be
        # on their way when `ran` is complete (7 of them once, in make wheel-test).
        async def all_acked() -> bool:
            return (await producer.get_stats()).completed >= len(added)

        await eventually(all_acked, timeout=30)
        stats = await producer.get_stats()
        refusals = {p: _errorstats(p) for p in (source, target)}
        print(
            f"\nreshard ({tool}): refusals by node {refusals}; {moved} keys moved in {took:.2f} s "
            f"while {len(added)} jobs were added; "
            f"slowest add during the move {slowest_add * 1000:.0f} ms; "
            f"ran {len(ran)} times for {len(set(ran))} jobs"
        )
        assert sorted(ran) == sorted(added)  # every job ran, and exactly once
        assert (stats.completed, stats.waiting, stats.active) == (len(added), 0, 0)
        assert moved > 0
        assert cluster.owner(slot) == target
        assert _keys_in(source, slot) == 0
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


# -- failover ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_with_replicas() -> Iterator[RedisCluster]:
    with RedisCluster(replicas=1) as found:
        found.wait_replicas_in_sync()
        yield found


async def test_durability_waits_for_the_replica_of_the_queues_node(
    cluster_with_replicas: RedisCluster,
) -> None:
    """WAIT goes in the script's pipeline to the queue's primary: one replica confirms;
    asking for two (each primary has one) raises NotReplicatedError."""
    url = cluster_with_replicas.url
    name = f"durable-{uuid.uuid4().hex[:6]}"
    one = QueueSettings(durability=Durability(replicas=1, timeout=1000))
    async with JobQueue(name, redis=url, settings=one) as queue:
        job_id = await queue.add_job("n", 1)
        queue.process("n", lambda job: job.data)
        await queue.start_worker()
        assert (await queue.wait_for(job_id, 10_000)).status is JobStatus.COMPLETED
    two = QueueSettings(durability=Durability(replicas=2, timeout=100))
    async with JobQueue(name, redis=url, settings=two) as queue:
        with pytest.raises(NotReplicatedError):
            await queue.add_job("n", 2)


@pytest.mark.parametrize("how", ["graceful", "sigkill"])
async def test_a_failover_of_the_queues_primary_is_followed(
    tmp_path: Path, cluster_with_replicas: RedisCluster, how: str
) -> None:
    """The primary of the queue's slot fails over (``CLUSTER FAILOVER`` on its replica,
    or SIGKILL and the replica takes over after the node timeout) while two producers add
    and two worker processes run: every acknowledged add that the new primary holds runs;
    the figures are printed for docs/guarantees.md."""
    cluster = cluster_with_replicas
    cluster.wait_until_stable()
    cluster.wait_replicas_in_sync()
    name = sentinel_test.NAME  # the workers of the Sentinel test process this queue
    slot = cluster.slot_of(f"{{{name}}}")
    old = cluster.owner(slot)
    queue = JobQueue(name, redis=cluster.url)
    await queue.clear()
    workers = [sentinel_test.start_worker(tmp_path, cluster.url, n) for n in range(2)]
    jobs = sentinel_test.JOBS // 2
    try:
        producers = [sentinel_test.Producer(queue, n) for n in range(2)]
        adding = [asyncio.ensure_future(p.run(jobs // 2)) for p in producers]

        async def halfway() -> bool:
            return sum(len(p.added) for p in producers) >= jobs // 2

        await eventually(halfway, timeout=60, interval=0.005)
        replica = cluster.replica_of(old)
        failed_at = time.monotonic()
        if how == "graceful":
            assert redis_command(replica.port, "CLUSTER", "FAILOVER") == "OK"
        else:
            cluster.server_on(old).kill()
        new = await asyncio.to_thread(cluster.wait_for_failover, slot, old)
        failover_s = time.monotonic() - failed_at
        await asyncio.wait_for(asyncio.gather(*adding), timeout=60)
        acknowledged = {i for p in producers for i in p.added}
        lost = acknowledged - await asyncio.to_thread(sentinel_test._job_ids_on, new)

        async def all_ran() -> bool:
            runs = {i for i, _ in sentinel_test.read_runs(tmp_path)}
            return acknowledged - lost <= runs

        await eventually(all_ran, timeout=60, interval=0.05)
        runs = sentinel_test.read_runs(tmp_path)
        counts = Counter(i for i, _ in runs)
        resumed = min(at for _, at in runs if at > failed_at + 0.3) - failed_at
        retries = sum(sum(p.failures.values()) for p in producers)
        print(
            f"\ncluster failover ({how}): new primary after {failover_s:.2f} s, work resumed "
            f"after {resumed:.2f} s; {len(acknowledged)} acknowledged adds, {len(lost)} lost, "
            f"{sum(1 for n in counts.values() if n > 1)} jobs ran twice, {retries} add retries"
        )
        assert len(acknowledged) == jobs  # every batch was added in the end
        assert new != old and resumed < 20
        if how == "graceful":
            assert not lost  # the replica had every write before it took over
        else:
            # Replication is asynchronous: at most the batches in flight at the kill.
            assert len(lost) <= 2 * sentinel_test.BATCH
    finally:
        stop_processes(workers)
        await queue.close(timeout=5000)


def _keys_in(port: int, slot: int) -> int:
    reply = redis_command(port, "CLUSTER", "COUNTKEYSINSLOT", str(slot))
    assert isinstance(reply, int)
    return reply
