"""promote_job, run_schedule_now and the index of queue names (jobqueue.list_queues)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from jobqueue import JobQueue, JobStatus, list_queues
from jobqueue.errors import InvalidStateError, JobNotFoundError
from jobqueue.sync import JobQueue as SyncJobQueue


async def test_promote_moves_a_delayed_job_to_waiting_now(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    later = await queue.add_job("report", {"n": 1}, delay=3_600_000, priority=3)
    waiting = await queue.add_job("report", {"n": 2})
    await queue.promote_job(later)
    info = await queue.get_job_status(later)
    assert info is not None and info.status is JobStatus.WAITING
    assert info.priority == 3 and info.attempts == 0 and info.data == {"n": 1}
    stats = await queue.get_stats()
    assert (stats.waiting, stats.delayed) == (2, 0)

    with pytest.raises(InvalidStateError, match="only delayed jobs"):
        await queue.promote_job(waiting)
    with pytest.raises(JobNotFoundError):
        await queue.promote_job("no-such-job")

    # A worker runs it at once.
    queue.process("report", lambda job: job.data["n"])
    await queue.start_worker()
    assert (await queue.wait_for(later, 30_000)).return_value == 1


async def test_promote_on_a_partitioned_queue_finds_the_jobs_partition(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(partitions=3)
    ids = [await queue.add_job("later", i, delay=3_600_000) for i in range(4)]
    for job_id in ids:
        await queue.promote_job(job_id)
    stats = await queue.get_stats()
    assert (stats.waiting, stats.delayed) == (4, 0)


async def test_run_schedule_now_enqueues_one_run_and_keeps_the_plan(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    cron = await queue.schedule_job("digest", {"kind": "daily"}, "0 8 * * *")
    every = await queue.schedule_every("tick", None, 3_600_000)
    before = {s.id: s.next_run_at for s in await queue.list_schedules()}

    first = await queue.run_schedule_now(cron)
    second = await queue.run_schedule_now(cron)
    third = await queue.run_schedule_now(every)
    assert len({first, second, third}) == 3
    info = await queue.get_job_status(first)
    assert info is not None and info.status is JobStatus.WAITING
    assert info.name == "digest" and info.data == {"kind": "daily"}
    assert info.schedule_id == cron and info.scheduled_for is not None
    after = {s.id: s for s in await queue.list_schedules()}
    assert {sid: s.next_run_at for sid, s in after.items()} == before
    last = after[cron].last_run_at
    assert last is not None and last >= info.scheduled_for
    assert (await queue.get_stats()).waiting == 3

    with pytest.raises(JobNotFoundError, match="no-such-schedule"):
        await queue.run_schedule_now("no-such-schedule")


async def test_the_index_lists_every_used_queue_once(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    assert await list_queues(redis_url) == []
    unused = make_queue(name=f"{queue_name}-unused")
    await unused.get_stats()  # a read does not list a queue
    producer = make_queue(name=f"{queue_name}-a")
    await producer.add_job("x", None)
    await producer.add_job("x", None)
    partitioned = make_queue(name=f"{queue_name}-parts", partitions=3)
    await partitioned.add_jobs([("x", i) for i in range(6)])  # jobs in every partition
    scheduled = make_queue(name=f"{queue_name}-sched")
    await scheduled.schedule_every("tick", None, 60_000)
    worker = make_queue(name=f"{queue_name}-worker")
    await worker.start_worker()
    other_prefix = make_queue(name=f"{queue_name}-other", prefix="elsewhere")
    await other_prefix.add_job("x", None)

    names = await list_queues(redis_url)
    assert names == sorted(f"{queue_name}-{suffix}" for suffix in ("a", "parts", "sched", "worker"))
    assert await list_queues(redis_url, prefix="elsewhere") == [f"{queue_name}-other"]
    assert producer._indexed and not unused._indexed


async def test_the_sync_queue_lists_its_queue_promotes_and_runs_now(
    redis_url: str, queue_name: str
) -> None:
    def produce() -> None:
        with SyncJobQueue(queue_name, redis=redis_url) as queue:
            queue.add_job("x", None)
            later = queue.add_job("x", None, delay=3_600_000)  # blocking path, once listed
            queue.promote_job(later)
            every = queue.schedule_every("tick", None, 3_600_000)
            assert queue.get_job_status(queue.run_schedule_now(every)) is not None
            assert queue.get_stats().waiting == 3

    await asyncio.to_thread(produce)
    assert await list_queues(redis_url) == [queue_name]
