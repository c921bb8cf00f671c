"""Regressions found by review: each test names what was wrong."""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue import JobInfo, JobQueue, JobStatus, QueueEvent, RedisConfig
from jobqueue.errors import InvalidOptionError, QueueClosedError


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


@pytest.mark.parametrize("name", ["orders*", "orders?", "orders[12]"])
async def test_clear_leaves_queues_matching_a_glob_in_the_name_alone(
    redis_url: str, name: str
) -> None:
    # Was: clear() scanned for `jq:{<name>}:idem:*` unescaped, so `orders*` also deleted
    # the idempotency keys of `orders1`.
    async with (
        JobQueue("orders1", redis=redis_url) as bystander,
        JobQueue(name, redis=redis_url) as queue,
    ):
        first = await bystander.add_job("t", None, idempotency_key="k")
        await queue.add_job("t", None, idempotency_key="k")
        await queue.clear()
        assert await bystander.add_job("t", None, idempotency_key="k") == first


async def test_add_jobs_of_nothing_on_a_closed_queue_raises(redis_url: str) -> None:
    # Was: the empty-list shortcut came before the open check.
    queue = JobQueue("q", redis=redis_url)
    await queue.close()
    with pytest.raises(QueueClosedError):
        await queue.add_jobs([])


@pytest.mark.parametrize(
    "make",
    [
        lambda: JobQueue("q", prefix="p\ud800"),
        lambda: RedisConfig(host="h\ud800"),
        lambda: RedisConfig(password="p\ud800"),
        lambda: RedisConfig(username="u\ud800"),
    ],
)
def test_strings_that_are_not_unicode_are_refused(make: Any) -> None:
    # Was: a raw UnicodeEncodeError from the native layer or from quote().
    with pytest.raises(InvalidOptionError, match="must be valid Unicode"):
        make()


async def test_an_idempotency_key_that_is_not_unicode_is_refused(redis_url: str) -> None:
    async with JobQueue("q", redis=redis_url) as queue:
        with pytest.raises(InvalidOptionError) as info:
            await queue.add_job("t", None, idempotency_key="k\ud800")
        assert info.value.field == "idempotency_key"
