"""jobqueue.sync.JobQueue: the same producer/admin methods, blocking."""

from __future__ import annotations

import pytest

from jobqueue import JobStatus
from jobqueue.errors import (
    InvalidOptionError,
    InvalidStateError,
    JobNotFoundError,
    QueueClosedError,
)
from jobqueue.sync import JobQueue


def test_blocking_facade_offers_the_same_methods(redis_url: str, queue_name: str) -> None:
    with JobQueue(queue_name, redis=redis_url) as q:
        first = q.add_job("t", {"a": 1}, priority=2)
        ids = q.add_jobs([("t", 1), ("t", 2, {"delay": 60_000})])
        info = q.get_job_status(first)
        assert info is not None and info.data == {"a": 1} and info.priority == 2
        assert [j.id for j in q.get_jobs_by_status(JobStatus.WAITING)] == [ids[0], first]
        stats = q.get_stats()
        assert (stats.waiting, stats.delayed) == (2, 1)
        assert q.health_check()
        q.pause()
        assert q.get_stats().paused == 2 and q.is_paused()
        q.resume()
        assert not q.is_paused()
        q.remove_job(ids[0])
        assert q.drain() == 1
        assert q.drain(include_delayed=True) == 1
        q.add_job("t", None)
        assert q.clear() == 1


def test_errors_propagate_with_their_types(redis_url: str, queue_name: str) -> None:
    q = JobQueue(queue_name, redis=redis_url)
    with pytest.raises(InvalidOptionError):
        q.add_job("t", None, delay=-1)
    with pytest.raises(JobNotFoundError):
        q.remove_job("404")
    q.close()
    q.close()
    with pytest.raises(QueueClosedError):
        q.add_job("t", None)


def test_bad_construction_fails_before_starting_a_thread() -> None:
    with pytest.raises(InvalidOptionError):
        JobQueue("bad name")


def test_blocking_schedules_and_recovery(redis_url: str, queue_name: str) -> None:
    with JobQueue(queue_name, redis=redis_url) as q:
        sid = q.schedule_every("beat", None, 60_000)
        assert q.schedule_job("report", None, "0 2 * * *") != sid
        assert sid in {s.id for s in q.list_schedules()}
        assert q.unschedule(sid) is True
        assert q.get_dlq_jobs() == []
        assert q.replay_dlq() == 0
        assert q.bulk_retry("failed") == 0
        job_id = q.add_job("t", None)
        with pytest.raises(InvalidStateError):
            q.retry_job(job_id)
        with pytest.raises(TimeoutError):
            q.wait_for(job_id, 50)


def test_blocking_facade_offers_the_group_methods(redis_url: str, queue_name: str) -> None:
    with JobQueue(queue_name, redis=redis_url) as q:
        q.add_job("t", None, group="acme")
        q.set_global_concurrency(10)
        q.set_default_group_limit(concurrency=3)
        q.set_group_limit("acme", concurrency=1, rate=(5, 1000))
        q.pause_group("acme")
        stats = q.get_stats(group="acme")
        assert (stats.waiting, stats.paused, stats.concurrency) == (1, True, 1)
        assert [j.group for j in q.get_jobs_by_status(JobStatus.PAUSED, group="acme")] == ["acme"]
        q.resume_group("acme")
        q.remove_group_limit("acme")
        assert q.get_group_stats("acme").concurrency == 3
        assert q.get_stats().waiting == 1
