"""add_job / add_jobs: ids, every option, idempotency, ordering, events, adapters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobqueue import Backoff, JobInfo, JobOptions, JobQueue, JobStatus, QueueEvent, RetryConfig
from jobqueue.testing import redis_command, redis_keys

from .helpers import port_of, redis_time_ms


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> Any:
    q = JobQueue(queue_name, redis=redis_url)
    yield q
    await q.close()


async def test_add_job_returns_increasing_ids_and_stores_the_job(
    queue: JobQueue, redis_url: str
) -> None:
    before = redis_time_ms(port_of(redis_url))
    first = await queue.add_job("send-email", {"to": "a@example.com", "n": [1, 2.5, None]})
    second = await queue.add_job("send-email", {"to": "b@example.com"})
    assert (first, second) == ("1", "2")
    info = await queue.get_job_status(first)
    assert info is not None
    assert info.name == "send-email"
    assert info.data == {"to": "a@example.com", "n": [1, 2.5, None]}
    assert info.status is JobStatus.WAITING
    assert info.attempts == 0
    assert before <= info.created_at <= redis_time_ms(port_of(redis_url))
    assert info.logs == []


async def test_a_waiting_job_is_one_string_sharing_its_options_text(
    queue: JobQueue, redis_url: str
) -> None:
    plain = await queue.add_job("t", {"k": 1})
    ranked = await queue.add_job("t", {"k": 2}, priority=3, delay=60_000, idempotency_key="once")
    port = port_of(redis_url)
    base = f"jq:{{{queue.name}}}:"
    for job_id in (plain, ranked):
        assert redis_command(port, "TYPE", f"{base}j:{job_id}") == "string"
        # No run state before the first fetch: a waiting job is its record only.
        assert redis_command(port, "EXISTS", f"{base}j:{job_id}:s") == 0
    # Delay and priority are not part of the options text, so both jobs share one.
    assert redis_command(port, "HLEN", f"{base}opts") == 1
    info = await queue.get_job_status(plain)
    assert info is not None
    assert (info.attempts, info.priority, info.delay) == (0, 0, 0)
    other = await queue.get_job_status(ranked)
    assert other is not None
    assert (other.priority, other.delay, other.status) == (3, 60_000, JobStatus.DELAYED)
    assert (other.opts["priority"], other.opts["delay"]) == (3, 60_000)


async def test_every_option_is_stored(queue: JobQueue) -> None:
    job_id = await queue.add_job(
        "task",
        {"k": 1},
        attempts=5,
        delay=timedelta(seconds=2),
        priority=7,
        backoff=Backoff.exponential(500, max_delay=8000, jitter=0.5),
        timeout=timedelta(seconds=3),
        remove_on_complete=100,
        remove_on_fail=timedelta(hours=1),
    )
    info = await queue.get_job_status(job_id)
    assert info is not None
    assert info.status is JobStatus.DELAYED
    assert (info.max_attempts, info.delay, info.priority) == (5, 2000, 7)
    assert info.opts["backoff"] == {
        "type": "exponential",
        "delay": 500,
        "max_delay": 8000,
        "jitter": 0.5,
    }
    assert info.opts["timeout"] == 3000
    assert info.opts["remove_on_complete"] == {"count": 100, "age": None}
    assert info.opts["remove_on_fail"] == {"count": None, "age": 3_600_000}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (True, {"count": 0, "age": None}),
        (False, {"count": None, "age": None}),
        (5, {"count": 5, "age": None}),
        (timedelta(minutes=1), {"count": None, "age": 60_000}),
        ({"count": 3, "age": 1000}, {"count": 3, "age": 1000}),
    ],
)
async def test_retention_forms(queue: JobQueue, given: Any, expected: dict[str, Any]) -> None:
    job_id = await queue.add_job("t", None, remove_on_complete=given)
    info = await queue.get_job_status(job_id)
    assert info is not None and info.opts["remove_on_complete"] == expected


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        (Backoff.fixed(5000), {"type": "fixed", "delay": 5000, "max_delay": None, "jitter": 0.0}),
        (
            {"type": "exponential", "delay": 100, "maxDelay": 400},
            {"type": "exponential", "delay": 100, "max_delay": 400, "jitter": 0.0},
        ),
        (250, {"type": "fixed", "delay": 250, "max_delay": None, "jitter": 0.0}),
    ],
)
async def test_backoff_forms(queue: JobQueue, backoff: Any, expected: dict[str, Any]) -> None:
    info = await queue.get_job_status(await queue.add_job("t", None, backoff=backoff))
    assert info is not None and info.opts["backoff"] == expected


async def test_defaults_precedence(redis_url: str, queue_name: str) -> None:
    async with JobQueue(
        queue_name,
        redis=redis_url,
        default_job_options=JobOptions(attempts=4, priority=2),
        retry=RetryConfig(max_attempts=9, backoff_type="fixed", backoff_delay=700),
    ) as q:
        plain = await q.get_job_status(await q.add_job("t", None))
        own = await q.get_job_status(await q.add_job("t", None, attempts=2, priority=0))
    assert plain is not None and own is not None
    assert (plain.max_attempts, plain.priority) == (4, 2)  # default_job_options
    assert plain.opts["backoff"]["type"] == "fixed"  # from RetryConfig
    assert plain.opts["backoff"]["delay"] == 700
    assert (own.max_attempts, own.priority) == (2, 0)  # per job wins


async def test_library_defaults(queue: JobQueue) -> None:
    info = await queue.get_job_status(await queue.add_job("t", None))
    assert info is not None
    assert info.max_attempts == 3
    assert info.opts["backoff"] == {
        "type": "exponential",
        "delay": 1000,
        "max_delay": 30000,
        "jitter": 0.0,
    }
    assert info.opts["timeout"] is None
    assert info.opts["remove_on_complete"] == {"count": 10_000, "age": None}
    assert info.opts["remove_on_fail"] == {"count": 10_000, "age": None}


async def test_idempotency_key_returns_the_first_job(queue: JobQueue, redis_url: str) -> None:
    first = await queue.add_job("pay", {"order": 1}, idempotency_key="order-1")
    keys = redis_keys(port_of(redis_url))
    again = await queue.add_job("pay", {"order": 1}, idempotency_key="order-1")
    assert again == first
    assert redis_keys(port_of(redis_url)) == keys
    assert (await queue.get_stats()).waiting == 1
    other = await queue.add_job("pay", {"order": 2}, idempotency_key="order-2")
    assert other != first


async def test_repeated_custom_job_id_keeps_the_first(queue: JobQueue) -> None:
    assert await queue.add_job("t", {"v": 1}, job_id="order-42") == "order-42"
    assert await queue.add_job("t", {"v": 2}, job_id="order-42") == "order-42"
    info = await queue.get_job_status("order-42")
    assert info is not None and info.data == {"v": 1}
    assert (await queue.get_stats()).waiting == 1


async def test_duplicates_within_one_batch_resolve_to_the_first(queue: JobQueue) -> None:
    ids = await queue.add_jobs(
        [
            ("t", 1, {"idempotency_key": "k"}),
            ("t", 2, {"job_id": "mine"}),
            ("t", 3, {"idempotency_key": "k"}),
            ("t", 4, {"job_id": "mine"}),
            ("t", 5),
        ]
    )
    assert ids == ["1", "mine", "1", "mine", "2"]
    assert (await queue.get_stats()).waiting == 3
    mine = await queue.get_job_status("mine")
    assert mine is not None and mine.data == 2


async def test_one_batch_keeps_priority_then_fifo_order(queue: JobQueue) -> None:
    priorities = [5, 0, 1, 5, 0, 1, 2, 0]
    ids = await queue.add_jobs([("t", i, {"priority": p}) for i, p in enumerate(priorities)])
    waiting = await queue.get_jobs_by_status(JobStatus.WAITING)
    order = sorted(range(len(ids)), key=lambda i: (priorities[i], i))
    assert [j.id for j in waiting] == [ids[i] for i in order]


async def test_jitter_adds_up_to_jitter_ms_to_the_delay(queue: JobQueue) -> None:
    delays = set()
    for _ in range(30):
        info = await queue.get_job_status(await queue.add_job("t", None, delay=1000, jitter=500))
        assert info is not None and info.status is JobStatus.DELAYED
        assert 1000 <= info.delay <= 1500
        delays.add(info.delay)
    assert len(delays) > 1  # it is random


async def test_jitter_alone_delays_the_job(queue: JobQueue) -> None:
    info = await queue.get_job_status(await queue.add_job("t", None, jitter=10_000))
    assert info is not None and 0 <= info.delay <= 10_000


async def test_add_jobs_in_one_call_keeps_order(queue: JobQueue) -> None:
    specs: list[Any] = [("bulk", {"i": i}) for i in range(2500)]
    ids = await queue.add_jobs(specs)
    assert ids == [str(i) for i in range(1, 2501)]
    assert (await queue.get_stats()).waiting == 2500
    last = await queue.get_job_status(ids[-1])
    assert last is not None and last.data == {"i": 2499}


async def test_add_jobs_mixed_forms(queue: JobQueue) -> None:
    ids = await queue.add_jobs(
        [
            ("a", 1),
            ("b", [2], JobOptions(priority=3)),
            ("c", {"x": 3}, {"delay": 500, "attempts": 2}),
            ("d", None, None),
        ]
    )
    infos = [await queue.get_job_status(i) for i in ids]
    assert [(i.name, i.data, i.priority, i.delay, i.max_attempts) for i in infos if i] == [
        ("a", 1, 0, 0, 3),
        ("b", [2], 3, 0, 3),
        ("c", {"x": 3}, 0, 500, 2),
        ("d", None, 0, 0, 3),
    ]


async def test_add_jobs_empty_list(queue: JobQueue, redis_url: str) -> None:
    assert await queue.add_jobs([]) == []
    assert redis_keys(port_of(redis_url)) == set()


async def test_waiting_order_is_priority_then_fifo(queue: JobQueue) -> None:
    priorities = [5, 0, 1, 5, 0, 1, 2, 0]
    ids = [await queue.add_job("t", {"p": p}, priority=p) for p in priorities]
    waiting = await queue.get_jobs_by_status(JobStatus.WAITING)
    order = sorted(range(len(ids)), key=lambda i: (priorities[i], i))
    assert [j.id for j in waiting] == [ids[i] for i in order]


async def test_delayed_jobs_are_listed_soonest_first(queue: JobQueue) -> None:
    late = await queue.add_job("t", None, delay=60_000)
    soon = await queue.add_job("t", None, delay=1_000)
    middle = await queue.add_job("t", None, delay=timedelta(seconds=30))
    delayed = await queue.get_jobs_by_status("delayed")
    assert [j.id for j in delayed] == [soon, middle, late]
    assert all(j.status is JobStatus.DELAYED for j in delayed)


async def test_job_added_event_fires_once_per_created_job(queue: JobQueue) -> None:
    seen: list[JobInfo] = []
    queue.on(QueueEvent.JOB_ADDED, seen.append)
    first = await queue.add_job("t", {"a": 1}, idempotency_key="k")
    await queue.add_job("t", {"a": 1}, idempotency_key="k")
    await queue.add_jobs([("u", 1), ("v", 2, {"delay": 100})])
    assert [(j.id, j.name, j.status) for j in seen] == [
        (first, "t", JobStatus.WAITING),
        ("2", "u", JobStatus.WAITING),
        ("3", "v", JobStatus.DELAYED),
    ]
    assert seen[0].data == {"a": 1} and seen[0].created_at > 0
    queue.off(QueueEvent.JOB_ADDED, seen.append)
    await queue.add_job("t", None)
    assert len(seen) == 3


async def test_async_event_handlers_and_handler_errors(queue: JobQueue) -> None:
    seen: list[str] = []
    errors: list[BaseException] = []

    async def on_added(job: JobInfo) -> None:
        seen.append(job.id)

    def broken(job: JobInfo) -> None:
        raise RuntimeError("handler bug")

    queue.on(QueueEvent.JOB_ADDED, on_added)
    queue.on(QueueEvent.JOB_ADDED, broken)
    queue.on(QueueEvent.QUEUE_ERROR, lambda job, error: errors.append(error))
    job_id = await queue.add_job("t", None)
    await queue._events.wait_idle()
    assert seen == [job_id]
    assert [str(e) for e in errors] == ["handler bug"]


class RecordingMetrics:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict[str, str] | None]] = []

    def increment(self, name: str, value: float = 1, tags: dict[str, str] | None = None) -> None:
        self.calls.append((name, value, tags))

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append((name, value, tags))


class RecordingSpan:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def set_attribute(self, key: str, value: Any) -> None:
        self.log.append(f"attr:{key}")

    def record_exception(self, error: BaseException) -> None:
        self.log.append("exception")

    def end(self) -> None:
        self.log.append("end")


class RecordingTracer:
    def __init__(self) -> None:
        self.log: list[str] = []

    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> RecordingSpan:
        count = (attributes or {}).get("messaging.batch.message_count", 1)
        self.log.append(f"start:{name}:{count}")
        return RecordingSpan(self.log)


async def test_metrics_and_telemetry_adapters(redis_url: str, queue_name: str) -> None:
    metrics, tracer = RecordingMetrics(), RecordingTracer()
    async with JobQueue(queue_name, redis=redis_url, metrics=metrics, telemetry=tracer) as q:
        await q.add_jobs([("a", 1), ("b", 2)])
        await q.add_job("a", 1, job_id="x")
        await q.add_job("a", 1, job_id="x")  # not created: not counted
    assert metrics.calls == [
        ("jobqueue.jobs.added", 1, {"queue": queue_name, "job": "a"}),
        ("jobqueue.jobs.added", 1, {"queue": queue_name, "job": "b"}),
        ("jobqueue.jobs.added", 1, {"queue": queue_name, "job": "a"}),
    ]
    send = f"start:send {queue_name}"
    single = [f"{send}:1", "attr:messaging.message.id", "end"]
    assert tracer.log == [f"{send}:2", "end", *single, *single]
