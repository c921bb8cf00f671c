"""Every public call, fed hostile input, raises a typed error and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from jobqueue import JobQueue
from jobqueue.errors import JobQueueError
from jobqueue.testing import redis_keys

from ..helpers import port_of

Call = Callable[[JobQueue], Awaitable[Any]]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


LONG = "x" * 10_240
HOSTILE_IDS = ["", "a:b", "{other}", "a}b", "has space", "nul\x00", LONG, 5, None, b"1"]
HOSTILE_NAMES = ["", "nul\x00", "bell\x07", LONG, 5, None, b"name", ["list"]]

CALLS: list[tuple[str, Call]] = [
    ("data: 10,000 levels deep", lambda q: q.add_job("t", _nested(10_000))),
    ("data: huge int", lambda q: q.add_job("t", {"n": 10**40})),
    ("data: NaN", lambda q: q.add_job("t", [float("nan")])),
    ("data: -Infinity", lambda q: q.add_job("t", {"x": float("-inf")})),
    ("data: over max_payload_bytes", lambda q: q.add_job("t", "x" * (2**20 + 1))),
    ("unknown option", lambda q: q.add_job("t", None, opts={"retries": 3})),
    ("option of the wrong type", lambda q: q.add_job("t", None, priority="high")),
    ("enormous delay", lambda q: q.add_job("t", None, delay=10**30)),
    ("enormous timeout", lambda q: q.add_job("t", None, timeout=10**20)),
    ("enormous priority", lambda q: q.add_job("t", None, priority=10**12)),
    ("enormous attempts", lambda q: q.add_job("t", None, attempts=10**12)),
    ("negative attempts", lambda q: q.add_job("t", None, attempts=-1)),
    ("enormous retention", lambda q: q.add_job("t", None, remove_on_complete=10**30)),
    ("idempotency key of 10 KB", lambda q: q.add_job("t", None, idempotency_key=LONG)),
    ("add_jobs of a dict", lambda q: q.add_jobs({"t": 1})),  # type: ignore[arg-type]
    ("enormous limit", lambda q: q.get_jobs_by_status("waiting", 10**30)),
    ("unknown status", lambda q: q.get_jobs_by_status("running")),
    ("bulk_retry of waiting", lambda q: q.bulk_retry("waiting")),
    ("bulk_retry, enormous limit", lambda q: q.bulk_retry("dlq", 10**30)),
    ("drain(include_delayed='yes')", lambda q: q.drain("yes")),  # type: ignore[arg-type]
    ("wait_for, negative timeout", lambda q: q.wait_for("1", -5)),
    ("invalid cron", lambda q: q.schedule_job("t", None, "61 25 * * *")),
    ("cron of 7 fields", lambda q: q.schedule_job("t", None, "* * * * * * *")),
    ("unknown time zone", lambda q: q.schedule_job("t", None, "0 2 * * *", tz="Mars/Base")),
    ("schedule_every(0)", lambda q: q.schedule_every("t", None, 0)),
    ("schedule_every, enormous", lambda q: q.schedule_every("t", None, 10**20)),
    ("schedule id with NUL", lambda q: q.schedule_every("t", None, 1000, schedule_id="")),
    ("schedule, non-JSON data", lambda q: q.schedule_every("t", {1, 2}, 1000)),
    ("schedule, per-job option", lambda q: q.schedule_every("t", None, 1000, job_id="x")),
]
for bad_id in HOSTILE_IDS:
    for method in ("get_job_status", "remove_job", "retry_job", "wait_for"):
        CALLS.append((f"{method}({bad_id!r:.20})", lambda q, m=method, i=bad_id: getattr(q, m)(i)))
    if bad_id is not None:  # job_id=None just means "no custom id"
        CALLS.append((f"job_id={bad_id!r:.20}", lambda q, i=bad_id: q.add_job("t", None, job_id=i)))
    CALLS.append((f"unschedule({bad_id!r:.20})", lambda q, i=bad_id: q.unschedule(i)))
for bad_name in HOSTILE_NAMES:
    CALLS.append((f"add_job({bad_name!r:.20})", lambda q, n=bad_name: q.add_job(n, None)))
    CALLS.append(
        (f"add_jobs name {bad_name!r:.20}", lambda q, n=bad_name: q.add_jobs([("t", 1), (n, 2)]))
    )
    CALLS.append(
        (f"schedule name {bad_name!r:.20}", lambda q, n=bad_name: q.schedule_every(n, None, 1000))
    )


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[JobQueue]:
    q = JobQueue(queue_name, redis=redis_url, settings={"max_payload_bytes": 2**20})
    await q.add_job("existing", {"ok": True})
    await q.schedule_every("existing", None, 60_000)
    yield q
    await q.close()


@pytest.mark.parametrize(("label", "call"), CALLS, ids=[label for label, _ in CALLS])
async def test_hostile_input_is_refused_and_writes_nothing(
    queue: JobQueue, redis_url: str, label: str, call: Call
) -> None:
    port = port_of(redis_url)
    before = redis_keys(port)
    with pytest.raises(JobQueueError):
        await call(queue)
    assert redis_keys(port) == before


def test_sync_calls_refuse_hostile_input_before_anything_runs() -> None:
    queue = JobQueue("q", redis="redis://127.0.0.1:1")
    with pytest.raises(JobQueueError):
        queue.process("nul\x00", lambda job: None)
    with pytest.raises(JobQueueError):
        queue.process("t", "not callable")  # type: ignore[arg-type]
    with pytest.raises(JobQueueError):
        queue.on("job-exploded", lambda job: None)
