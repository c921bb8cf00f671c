"""Bad input raises a typed error naming the problem, and writes nothing to Redis."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest

from jobqueue import JobQueue, QueueSettings
from jobqueue.errors import (
    InvalidOptionError,
    JobQueueError,
    PayloadTooLargeError,
    SerializationError,
)
from jobqueue.testing import redis_keys

from .helpers import port_of


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = JobQueue(queue_name, redis=redis_url, settings=QueueSettings(max_payload_bytes=100))
    await q.add_job("existing", {"ok": True})  # the queue exists: any write would show
    yield q
    await q.close()


BAD_DATA = [
    ({1, 2}, "set is not JSON"),
    ((1, 2), "tuple is not JSON"),
    (b"raw", "bytes is not JSON"),
    (datetime.datetime(2026, 1, 1), "datetime is not JSON"),
    (object(), "object is not JSON"),
    (float("nan"), "NaN is not a JSON number"),
    (math.inf, "inf is not a JSON number"),
    ({1: "x"}, "dict keys must be str"),
    ({"a": [1, {"b": {2, 3}}]}, '["a"][1]["b"]: set is not JSON'),
    ({"deep": [float("-inf")]}, '["deep"][0]: -inf'),
    (2**70, "does not fit in 64 bits"),
]


@pytest.mark.parametrize(("data", "message"), BAD_DATA)
async def test_non_json_data_is_refused(
    queue: JobQueue, redis_url: str, data: Any, message: str
) -> None:
    keys = redis_keys(port_of(redis_url))
    with pytest.raises(SerializationError) as info:
        await queue.add_job("job", data)
    assert message in str(info.value)
    assert "job" in str(info.value)
    assert redis_keys(port_of(redis_url)) == keys


def test_self_referencing_data_is_refused() -> None:
    data: list[Any] = []
    data.append(data)
    queue = JobQueue("cycle", redis="redis://127.0.0.1:1")

    async def add() -> None:
        await queue.add_job("job", data)

    import asyncio

    with pytest.raises(SerializationError, match="nested deeper"):
        asyncio.run(add())


BAD_OPTIONS = [
    ({"delay": -5}, "delay", "delay must be >= 0, got -5"),
    ({"delay": datetime.timedelta(seconds=-1)}, "delay", "must be >= 0"),
    ({"delay": 1.5}, "delay", "must be an int (milliseconds) or a timedelta"),
    ({"attempts": 0}, "attempts", "attempts must be >= 1, got 0"),
    ({"attempts": "3"}, "attempts", "must be an int"),
    ({"attempts": True}, "attempts", "must be an int"),
    ({"backoff": {"type": "linear", "delay": 5}}, "backoff.type", "linear"),
    ({"backoff": {"delay": 5}}, "backoff", "needs at least 'type' and 'delay'"),
    ({"backoff": "fast"}, "backoff", "must be a Backoff"),
    ({"priority": -1}, "priority", "must be >= 0"),
    ({"priority": 2**21}, "priority", "must be <= 2097151"),
    ({"timeout": 0}, "timeout", "must be >= 1"),
    ({"jitter": -1}, "jitter", "must be >= 0"),
    ({"job_id": "123"}, "job_id", "must not be only digits"),
    ({"job_id": ""}, "job_id", "must not be empty"),
    ({"idempotency_key": ""}, "idempotency_key", "must not be empty"),
    ({"idempotency_key": 7}, "idempotency_key", "must be a str"),
    ({"remove_on_complete": "yes"}, "remove_on_complete", "must be a bool"),
    ({"remove_on_fail": -3}, "remove_on_fail", "must be >= 0"),
]


@pytest.mark.parametrize(("options", "field", "message"), BAD_OPTIONS)
async def test_bad_options_are_refused(
    queue: JobQueue, redis_url: str, options: dict[str, Any], field: str, message: str
) -> None:
    keys = redis_keys(port_of(redis_url))
    with pytest.raises(InvalidOptionError) as info:
        await queue.add_job("job", {"x": 1}, **options)
    assert info.value.field == field
    assert message in str(info.value)
    assert redis_keys(port_of(redis_url)) == keys


@pytest.mark.parametrize("name", ["", 5, None, b"job", "x" * 1001])
async def test_bad_job_names_are_refused(queue: JobQueue, redis_url: str, name: Any) -> None:
    keys = redis_keys(port_of(redis_url))
    with pytest.raises(InvalidOptionError) as info:
        await queue.add_job(name, {"x": 1})
    assert info.value.field == "name"
    assert redis_keys(port_of(redis_url)) == keys


async def test_payload_over_the_limit_is_refused(queue: JobQueue, redis_url: str) -> None:
    keys = redis_keys(port_of(redis_url))
    with pytest.raises(PayloadTooLargeError, match="over max_payload_bytes=100"):
        await queue.add_job("job", {"blob": "x" * 200})
    assert redis_keys(port_of(redis_url)) == keys


async def test_one_bad_item_refuses_the_whole_batch(queue: JobQueue, redis_url: str) -> None:
    keys = redis_keys(port_of(redis_url))
    with pytest.raises(SerializationError, match=r"jobs\[2\]"):
        await queue.add_jobs([("a", 1), ("b", 2), ("c", {1, 2}), ("d", 4)])
    with pytest.raises(InvalidOptionError) as info:
        await queue.add_jobs([("a", 1), ("b", 2, {"delay": -1})])
    assert info.value.field == "jobs[1].delay"
    with pytest.raises(InvalidOptionError) as info:
        await queue.add_jobs([("a", 1), ("b",)])  # type: ignore[list-item]
    assert info.value.field == "jobs[1]"
    with pytest.raises(InvalidOptionError) as info:
        await queue.add_jobs([("a", 1), ("b", 1, {"colour": "red"})])
    assert info.value.field == "jobs[1].opts"
    with pytest.raises(InvalidOptionError):
        await queue.add_jobs("not a list")  # type: ignore[arg-type]
    assert redis_keys(port_of(redis_url)) == keys
    assert (await queue.get_stats()).waiting == 1


@pytest.mark.parametrize("status", ["running", "", 3, None])
async def test_unknown_status_is_refused(queue: JobQueue, status: Any) -> None:
    with pytest.raises(InvalidOptionError) as info:
        await queue.get_jobs_by_status(status)
    assert info.value.field == "status"


@pytest.mark.parametrize("limit", [0, -1, "10", 1.5])
async def test_bad_limit_is_refused(queue: JobQueue, limit: Any) -> None:
    with pytest.raises(InvalidOptionError) as info:
        await queue.get_jobs_by_status("waiting", limit)
    assert info.value.field == "limit"


async def test_every_error_is_a_job_queue_error(queue: JobQueue) -> None:
    for call in (
        queue.add_job("job", {1}),
        queue.add_job("job", None, delay=-1),
        queue.get_jobs_by_status("nope"),
        queue.remove_job("404"),
    ):
        with pytest.raises(JobQueueError):
            await call
    assert issubclass(InvalidOptionError, ValueError)
    assert issubclass(SerializationError, TypeError)
