"""Regressions found by review: each test names what was wrong."""

from __future__ import annotations

import pytest

from jobqueue import JobInfo, JobQueue, JobStatus, QueueEvent, RedisConfig
from jobqueue.errors import InvalidOptionError


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/notanumber", "redis://localhost:0/0", "redis://h:70000/0"]
)
def test_a_bad_url_is_refused_when_the_config_is_made(url: str) -> None:
    # Was: only the scheme was checked up front; a bad database failed later, and port 0
    # was silently replaced by 6379.
    with pytest.raises(InvalidOptionError) as info:
        RedisConfig(url=url)
    assert info.value.field == "redis.url"


def test_a_bad_url_names_the_url_field_through_the_queue() -> None:
    # Was: wrapped again as field "redis" ("redis redis.url ...").
    with pytest.raises(InvalidOptionError) as info:
        JobQueue("q", redis="redis://localhost:6379/x")
    assert info.value.field == "redis.url"
    assert str(info.value) == "redis.url database must be a number, got 'x'"


async def test_job_added_on_a_paused_queue_reports_paused(redis_url: str, queue_name: str) -> None:
    # Was: the JOB_ADDED snapshot said WAITING while get_job_status said PAUSED.
    async with JobQueue(queue_name, redis=redis_url) as queue:
        await queue.pause()
        seen: list[JobInfo] = []
        queue.on(QueueEvent.JOB_ADDED, seen.append)
        job_id = await queue.add_job("t", None)
        later = await queue.add_job("t", None, delay=60_000)
        stored = await queue.get_job_status(job_id)
        assert stored is not None and stored.status is JobStatus.PAUSED
        assert [(j.id, j.status) for j in seen] == [
            (job_id, JobStatus.PAUSED),
            (later, JobStatus.DELAYED),
        ]
