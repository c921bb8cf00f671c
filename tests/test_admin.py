"""Reading and managing a queue: status, stats, remove, clear, drain, pause, health, close."""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue import JobQueue, JobStatus
from jobqueue.errors import InvalidStateError, JobNotFoundError, QueueClosedError
from jobqueue.testing import free_port, redis_keys

from .helpers import eventually, plant_active_job, port_of


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = JobQueue(queue_name, redis=redis_url)
    yield q
    await q.close()


def make_active(port: int, queue: JobQueue, job_id: str) -> None:
    """Put a job in the state a worker leaves it in while processing it."""
    plant_active_job(port, queue.name, job_id, token="t", deadline=9999999999999)


async def test_unknown_job_has_no_status(queue: JobQueue) -> None:
    assert await queue.get_job_status("nope") is None


async def test_jobs_by_status_for_every_status(queue: JobQueue, redis_url: str) -> None:
    waiting = await queue.add_job("w", 1)
    delayed = await queue.add_job("d", 2, delay=60_000)
    running = await queue.add_job("a", 3)
    make_active(port_of(redis_url), queue, running)
    assert [j.id for j in await queue.get_jobs_by_status(JobStatus.WAITING)] == [waiting]
    assert [j.id for j in await queue.get_jobs_by_status("delayed")] == [delayed]
    active = await queue.get_jobs_by_status(JobStatus.ACTIVE)
    assert [(j.id, j.status) for j in active] == [(running, JobStatus.ACTIVE)]
    for status in ("completed", "failed", "dlq", "paused", "pending"):
        assert await queue.get_jobs_by_status(status) == []


async def test_limit_is_respected(queue: JobQueue) -> None:
    await queue.add_jobs([("t", i) for i in range(10)])
    await queue.add_jobs([("t", i, {"priority": 1}) for i in range(10)])
    assert len(await queue.get_jobs_by_status("waiting", limit=3)) == 3
    assert len(await queue.get_jobs_by_status("waiting", limit=15)) == 15
    assert len(await queue.get_jobs_by_status("waiting")) == 20


async def test_stats_count_each_status(queue: JobQueue, redis_url: str) -> None:
    empty = await queue.get_stats()
    assert (empty.waiting, empty.delayed, empty.active, empty.latency_ms) == (0, 0, 0, 0)
    await queue.add_jobs([("t", i) for i in range(4)])
    await queue.add_job("t", None, priority=3)
    await queue.add_job("t", None, delay=60_000)
    make_active(port_of(redis_url), queue, "1")
    stats = await queue.get_stats()
    assert (stats.waiting, stats.delayed, stats.active, stats.paused) == (4, 1, 1, 0)
    assert (stats.completed, stats.failed, stats.dlq) == (0, 0, 0)


@pytest.mark.parametrize("priority", [0, 4])
async def test_latency_is_the_age_of_the_oldest_waiting_job(queue: JobQueue, priority: int) -> None:
    await queue.add_job("t", None, priority=priority)

    async def aged() -> bool:
        return (await queue.get_stats()).latency_ms >= 50

    await eventually(aged, timeout=5)
    await queue.add_job("t", None, priority=1)  # a younger job does not lower it
    assert (await queue.get_stats()).latency_ms >= 50
    await queue.drain()
    assert (await queue.get_stats()).latency_ms == 0


async def test_pause_shows_waiting_jobs_as_paused(queue: JobQueue) -> None:
    ids = await queue.add_jobs([("t", i) for i in range(3)])
    await queue.add_job("t", None, delay=60_000)
    await queue.pause()
    stats = await queue.get_stats()
    assert (stats.waiting, stats.paused, stats.delayed) == (0, 3, 1)
    info = await queue.get_job_status(ids[0])
    assert info is not None and info.status is JobStatus.PAUSED
    assert [j.id for j in await queue.get_jobs_by_status(JobStatus.PAUSED)] == ids
    assert await queue.get_jobs_by_status(JobStatus.WAITING) == []
    await queue.resume()
    stats = await queue.get_stats()
    assert (stats.waiting, stats.paused) == (3, 0)
    info = await queue.get_job_status(ids[0])
    assert info is not None and info.status is JobStatus.WAITING


async def test_is_paused_tells_an_empty_queue_too(queue: JobQueue) -> None:
    assert await queue.is_paused() is False
    await queue.pause()
    assert await queue.is_paused() is True
    assert (await queue.get_stats()).paused == 0
    await queue.resume()
    assert await queue.is_paused() is False


async def test_pause_is_fleet_wide(queue: JobQueue, redis_url: str) -> None:
    await queue.add_job("t", None)
    async with JobQueue(queue.name, redis=redis_url) as other:
        await other.pause()
        assert (await queue.get_stats()).paused == 1


async def test_remove_job_in_each_removable_state(queue: JobQueue, redis_url: str) -> None:
    plain = await queue.add_job("t", None)
    prioritized = await queue.add_job("t", None, priority=2)
    delayed = await queue.add_job("t", None, delay=60_000)
    keep = await queue.add_job("t", None)
    for job_id in (plain, prioritized, delayed):
        await queue.remove_job(job_id)
        assert await queue.get_job_status(job_id) is None
    assert [j.id for j in await queue.get_jobs_by_status("waiting")] == [keep]
    stats = await queue.get_stats()
    assert (stats.waiting, stats.delayed) == (1, 0)
    assert not any(":j:" + j in k for k in redis_keys(port_of(redis_url)) for j in ("1", "2"))


async def test_remove_unknown_or_active_job(queue: JobQueue, redis_url: str) -> None:
    with pytest.raises(JobNotFoundError, match="nope"):
        await queue.remove_job("nope")
    job_id = await queue.add_job("t", None)
    make_active(port_of(redis_url), queue, job_id)
    with pytest.raises(InvalidStateError, match="active"):
        await queue.remove_job(job_id)
    assert await queue.get_job_status(job_id) is not None


async def test_drain_removes_waiting_and_optionally_delayed(
    queue: JobQueue, redis_url: str
) -> None:
    await queue.add_jobs([("t", i, {"priority": i % 2}) for i in range(6)])
    await queue.add_jobs([("t", i, {"delay": 60_000}) for i in range(2)])
    make_active(port_of(redis_url), queue, "1")
    assert await queue.drain() == 5
    stats = await queue.get_stats()
    assert (stats.waiting, stats.delayed, stats.active) == (0, 2, 1)
    await queue.add_job("t", None)
    assert await queue.drain(include_delayed=True) == 3
    stats = await queue.get_stats()
    assert (stats.waiting, stats.delayed, stats.active) == (0, 0, 1)


async def test_drain_of_a_large_queue_works_in_batches(queue: JobQueue) -> None:
    await queue.add_jobs([("t", i) for i in range(3500)])
    assert await queue.drain() == 3500
    assert (await queue.get_stats()).waiting == 0


async def test_clear_removes_everything_of_this_queue_only(queue: JobQueue, redis_url: str) -> None:
    port = port_of(redis_url)
    async with JobQueue("bystander", redis=redis_url) as other:
        await other.add_job("t", {"mine": True}, idempotency_key="k")
        bystander_keys = redis_keys(port, "jq:{bystander}:*")
        await queue.add_jobs([("t", i, {"priority": i % 3}) for i in range(3000)])
        await queue.add_jobs([("t", i, {"delay": 60_000}) for i in range(10)])
        await queue.add_job("t", None, idempotency_key="k")
        make_active(port, queue, "5")
        assert await queue.clear() == 3011
        left = redis_keys(port, f"jq:{{{queue.name}}}:*")
        # The options texts stay with the counters: their references are never reused.
        kept = ("meta", "id", "pc", "marker:2", "opts", "opts:index")
        assert left <= {f"jq:{{{queue.name}}}:{k}" for k in kept}
        assert redis_keys(port, "jq:{bystander}:*") == bystander_keys
        stats = await queue.get_stats()
        assert (stats.waiting, stats.delayed, stats.active) == (0, 0, 0)
        # Its idempotency keys went too: the same key enqueues again.
        again = await queue.add_job("t", None, idempotency_key="k")
        assert again == "3012"


async def test_health_check_reports_redis(queue: JobQueue) -> None:
    report = await queue.health_check()
    assert report
    assert report.redis_rtt_ms is not None and report.redis_rtt_ms > 0
    assert report.redis_version and report.redis_version[0].isdigit()
    assert report.workers == 0
    assert report.error is None


async def test_health_check_of_an_unreachable_redis_does_not_raise() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with JobQueue("down", redis={"url": url, "connect_timeout": 300}) as q:
        report = await q.health_check()
    assert not report
    assert report.error is not None and "cannot connect" in report.error


async def test_close_is_idempotent_and_final(redis_url: str, queue_name: str) -> None:
    q = JobQueue(queue_name, redis=redis_url)
    await q.add_job("t", None)
    await q.close()
    await q.close()
    assert q.closed
    with pytest.raises(QueueClosedError):
        await q.add_job("t", None)
    with pytest.raises(QueueClosedError):
        await q.get_stats()


async def test_async_context_manager_closes(redis_url: str, queue_name: str) -> None:
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_job("t", None)
    assert q.closed
