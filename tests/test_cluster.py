"""Redis Cluster: settings, every kind of call on a real 3-primary cluster, queues on
different nodes, and a script cache that a node lost (SCRIPT FLUSH) mid-run. The live
reshard is in tests/reliability/test_cluster.py. Real servers only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from jobqueue import (
    Backoff,
    JobEvent,
    JobQueue,
    JobStatus,
    QueueEvent,
    QueueEvents,
    QueueSettings,
    RedisConfig,
)
from jobqueue import sync as jq_sync
from jobqueue.errors import InvalidOptionError
from jobqueue.job import Job
from jobqueue.testing import redis_command
from jobqueue.testing_cluster import RedisCluster

from .helpers import eventually


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as found:
        yield found


@pytest.fixture
async def make_queue(cluster: RedisCluster) -> AsyncIterator[Callable[..., JobQueue]]:
    made: list[JobQueue] = []

    def make(name: str, **kwargs: Any) -> JobQueue:
        kwargs.setdefault("default_job_options", {"backoff": Backoff.fixed(20)})
        q = JobQueue(name, redis=cluster.url, **kwargs)
        made.append(q)
        return q

    yield make
    for q in made:
        await q.close(timeout=5000)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def _true(value: bool) -> bool:
    return value


# -- settings ---------------------------------------------------------------------------


def test_cluster_nodes_and_urls_become_seed_nodes() -> None:
    config = RedisConfig(url="redis+cluster://u:p%40w@a:7000,b,[::1]:7002")
    assert config.cluster_nodes == [("a", 7000), ("b", 6379), ("::1", 7002)]
    kwargs = config.native_kwargs()
    assert kwargs["cluster"] == [("a", 7000), ("b", 6379), ("::1", 7002)]
    assert kwargs["url"] == "redis://u:p%40w@a:7000/0"
    pairs = RedisConfig(cluster_nodes=[("h", 1), "g:2"], password="pw")
    assert pairs.native_kwargs()["cluster"] == [("h", 1), ("g", 2)]
    assert "pw" not in repr(pairs)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: RedisConfig(cluster_nodes=[]), "redis.cluster_nodes"),
        (lambda: RedisConfig(cluster_nodes="a:1"), "redis.cluster_nodes"),
        (lambda: RedisConfig(cluster_nodes=["a:x"]), "redis.cluster_nodes"),
        (lambda: RedisConfig(cluster_nodes=[("a", 70000)]), "redis.cluster_nodes"),
        (lambda: RedisConfig(cluster_nodes=[("a", 1, 2)]), "redis.cluster_nodes"),
        (lambda: RedisConfig(cluster_nodes=["a:1"], db=1), "redis.db"),
        (lambda: RedisConfig(cluster_nodes=["a:1"], host="h"), "redis.host"),
        (
            lambda: RedisConfig(cluster_nodes=["a:1"], sentinels=["s"], service_name="m"),
            "redis.cluster_nodes",
        ),
        (lambda: RedisConfig(url="redis+cluster://"), "redis.url"),
        (lambda: RedisConfig(url="redis+cluster://a:1/2"), "redis.url"),
        (lambda: RedisConfig(url="redis+cluster://a:x"), "redis.url"),
    ],
)
def test_bad_cluster_settings_are_refused(make: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        make()
    assert raised.value.field == field


# -- calls on a cluster -------------------------------------------------------------------


async def test_queues_on_every_node_each_complete_their_jobs_once(
    cluster: RedisCluster, make_queue: Callable[..., JobQueue]
) -> None:
    """Three queues, one per primary, two workers each: every job runs exactly once."""
    per_queue = 2000
    names = cluster.queue_names_per_primary(unique("spread"))
    ran: dict[str, list[int]] = {name: [] for name in names}
    for name in names:
        for _ in range(2):
            worker = make_queue(name)

            async def record(job: Job[int], name: str = name) -> None:
                ran[name].append(job.data)

            worker.process("n", record)
            await worker.start_worker()
    for name in names:
        producer = make_queue(name)
        await producer.add_jobs([("n", n) for n in range(per_queue - 100)])
        await asyncio.gather(*(producer.add_job("n", n) for n in range(per_queue - 100, per_queue)))

    async def all_ran() -> bool:
        return all(len(done) >= per_queue for done in ran.values())

    await eventually(all_ran, timeout=30)
    for name in names:
        assert sorted(ran[name]) == list(range(per_queue)), name
        keys = redis_command(
            cluster.owner(cluster.slot_of(f"{{{name}}}")), "EXISTS", f"jq:{{{name}}}:meta"
        )
        assert keys == 1  # the queue lives on the node that serves its slot


async def test_public_calls_work_on_a_cluster(
    cluster: RedisCluster, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue(unique("calls"))
    job_id = await queue.add_job("fails", {"x": 1}, attempts=2, backoff=Backoff.fixed(10))
    later = await queue.add_job("later", None, delay=60_000)
    info = await queue.get_job_status(later)
    assert info is not None and info.status is JobStatus.DELAYED
    assert [j.id for j in await queue.get_jobs_by_status(JobStatus.DELAYED)] == [later]
    await queue.remove_job(later)
    await queue.pause()
    assert (await queue.get_stats()).paused == 1
    await queue.resume()
    retried: list[int] = []

    def fail(job: Job[dict[str, int]]) -> None:
        retried.append(job.attempts_made)
        raise RuntimeError("no")

    queue.process("fails", fail)
    await queue.start_worker()
    await eventually(lambda: _true(len(retried) == 2))
    final = await queue.wait_for(job_id, 10_000)
    assert final.status in (JobStatus.DLQ, JobStatus.FAILED)
    assert [j.id for j in await queue.get_dlq_jobs()] == [job_id]
    assert await queue.replay_dlq() == 1
    await eventually(lambda: _true(len(retried) == 4))
    report = await queue.health_check()
    assert report.healthy and report.redis_version.startswith("7.")
    assert report.workers == 1
    await queue.add_jobs([("idle", None) for _ in range(3)])
    assert await queue.drain() >= 0
    assert await queue.clear() >= 0


async def test_groups_and_their_limits_on_a_cluster(
    cluster: RedisCluster, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue(unique("groups"))
    await queue.set_group_limit("tenant", concurrency=2)
    ids = await queue.add_jobs([("g", n, {"group": "tenant"}) for n in range(20)])
    stats = await queue.get_group_stats("tenant")
    assert (stats.waiting, stats.concurrency) == (20, 2)
    ran: list[int] = []
    queue.process("g", lambda job: ran.append(job.data))
    await queue.start_worker()
    for job_id in ids:
        await queue.wait_for(job_id, 10_000)
    assert sorted(ran) == list(range(20))


async def test_sync_facade_adds_from_threads_on_a_cluster(cluster: RedisCluster) -> None:
    name = unique("sync")

    def produce() -> list[str]:
        with jq_sync.JobQueue(name, redis=cluster.url) as queue:
            return [queue.add_job("j", {"n": n}) for n in range(50)]

    ids = await asyncio.to_thread(produce)
    assert len(set(ids)) == 50
    async with JobQueue(name, redis=cluster.url) as queue:
        assert (await queue.get_stats()).waiting == 50


async def test_delays_schedules_and_fleet_events_on_a_cluster(
    cluster: RedisCluster, make_queue: Callable[..., JobQueue]
) -> None:
    name = unique("sched")
    queue = make_queue(name)
    ticks: list[str] = []
    delayed: list[str] = []
    queue.process("tick", lambda job: ticks.append(job.id))
    queue.process("later", lambda job: delayed.append(job.id))
    seen: list[JobEvent] = []
    async with QueueEvents(name, redis=cluster.url) as events:
        events.on(QueueEvent.JOB_COMPLETED, lambda event: seen.append(event))
        await queue.start_worker()
        late = await queue.add_job("later", None, delay=300)
        await queue.schedule_every("tick", None, 200)
        await eventually(lambda: _true(len(ticks) >= 2 and delayed == [late]), timeout=15)
        await eventually(lambda: _true({late, *ticks[:2]} <= {e.id for e in seen}), timeout=15)


async def test_a_node_that_lost_its_scripts_loads_them_again(
    cluster: RedisCluster, make_queue: Callable[..., JobQueue]
) -> None:
    """SCRIPT FLUSH and FUNCTION FLUSH on the queue's node mid-run (as a new primary after
    a failover has no scripts): producers and workers load the scripts (or the Function
    library) again and lose nothing."""
    name = unique("noscript")
    node = cluster.owner(cluster.slot_of(f"{{{name}}}"))
    queue = make_queue(name)
    ran: list[int] = []
    queue.process("n", lambda job: ran.append(job.data))
    await queue.start_worker()
    await queue.add_jobs([("n", n) for n in range(500)])
    await eventually(lambda: _true(len(ran) >= 100))
    assert redis_command(node, "SCRIPT", "FLUSH") == "OK"
    assert redis_command(node, "FUNCTION", "FLUSH") == "OK"
    await queue.add_jobs([("n", n) for n in range(500, 1000)])
    assert redis_command(node, "SCRIPT", "FLUSH") == "OK"
    assert redis_command(node, "FUNCTION", "FLUSH") == "OK"
    await queue.add_job("n", 1000)
    await eventually(lambda: _true(len(ran) >= 1001), timeout=20)
    assert sorted(ran) == list(range(1001))


async def test_settings_are_read_on_the_queues_node(
    cluster: RedisCluster, make_queue: Callable[..., JobQueue]
) -> None:
    """Commands without a key (the settings check, health_check) go to the primary that
    serves the queue's slot: an evicting policy there is found, elsewhere it is not."""
    here, elsewhere = cluster.queue_names_per_primary(unique("settings"))[:2]
    node = cluster.owner(cluster.slot_of(f"{{{here}}}"))
    assert redis_command(node, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru") == "OK"
    try:
        found = await make_queue(
            elsewhere, settings=QueueSettings(on_unsafe_redis="ignore")
        ).health_check()
        assert not any(f.setting == "maxmemory-policy" for f in found.findings)
        found = await make_queue(
            here, settings=QueueSettings(on_unsafe_redis="ignore")
        ).health_check()
        assert any(f.setting == "maxmemory-policy" for f in found.findings)
    finally:
        redis_command(node, "CONFIG", "SET", "maxmemory-policy", "noeviction")
