"""Fleet events: every process's job events, read from the queue's capped Redis stream.

The listening queue never runs a worker here, so whatever its fleet handlers see can only
have come through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from jobqueue import (
    DLQConfig,
    JobEvent,
    JobQueue,
    JobStatus,
    QueueEvent,
    QueueEvents,
    QueueSettings,
)
from jobqueue.errors import InvalidOptionError, JobQueueError, QueueClosedError
from jobqueue.fleet import parse_entry
from jobqueue.job import Job
from jobqueue.sync import JobQueue as SyncJobQueue
from jobqueue.testing import redis_command, redis_keys

from .helpers import eventually, plant_stalled_job, port_of

ALL_JOB_EVENTS = [e for e in QueueEvent if e is not QueueEvent.QUEUE_ERROR]


class Recorder:
    """Fleet handlers for every job event; records (event, job id, error text)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self.events: list[JobEvent] = []
        self.changed = asyncio.Event()

    def attach(self, on: Callable[..., None]) -> None:
        for event in ALL_JOB_EVENTS:
            on(event, self._handler)

    def _handler(self, job: JobEvent, error: BaseException | None) -> None:
        self.events.append(job)
        self.seen.append((job.event.value, job.id, None if error is None else str(error)))
        self.changed.set()

    async def wait_for(self, count: int, event: QueueEvent, timeout: float = 10.0) -> None:
        async def enough() -> bool:
            return sum(1 for e in self.events if e.event is event) >= count

        await eventually(enough, timeout=timeout)

    def of(self, job_id: str) -> list[str]:
        return [event for event, id_, _ in self.seen if id_ == job_id]


async def test_fleet_handlers_see_another_processs_jobs_in_order(
    make_queue: Callable[..., JobQueue],
) -> None:
    listener, worker = make_queue(), make_queue()
    recorder = Recorder()
    recorder.attach(lambda event, handler: listener.on(event, handler, fleet=True))
    local_only: list[str] = []
    listener.on(QueueEvent.JOB_COMPLETED, lambda job: local_only.append(job.id))
    await listener.follow_fleet_events()

    worker.process("echo", lambda job: job.data)
    ids = await worker.add_jobs([("echo", i) for i in range(20)])
    await worker.start_worker()
    await recorder.wait_for(20, QueueEvent.JOB_COMPLETED)

    for job_id in ids:
        assert recorder.of(job_id) == ["job-added", "job-started", "job-completed"]
    done = [e for e in recorder.events if e.event is QueueEvent.JOB_COMPLETED]
    assert {e.name for e in done} == {"echo"}
    assert all(e.attempts == 1 for e in done)
    info = await worker.get_job_status(ids[0])
    assert info is not None and info.finished_at is not None
    assert abs(done[0].timestamp - info.finished_at) < 5_000  # the Redis clock
    assert local_only == []  # local handlers of the listener: it ran no job


async def test_failures_retries_and_dlq_carry_the_reason(
    make_queue: Callable[..., JobQueue],
) -> None:
    listener = make_queue()
    worker = make_queue(dlq=DLQConfig(enabled=True))
    recorder = Recorder()
    recorder.attach(lambda event, handler: listener.on(event, handler, fleet=True))

    @worker.processor("flaky")
    async def flaky(job: Job[None]) -> None:
        raise RuntimeError(f"down on attempt {job.attempts_made}")

    await listener.follow_fleet_events()
    job_id = await worker.add_job("flaky", None, attempts=2)
    await worker.start_worker()
    await recorder.wait_for(1, QueueEvent.JOB_DLQ)

    assert recorder.of(job_id) == [
        "job-added", "job-started", "job-retrying", "job-started", "job-failed", "job-dlq",
    ]  # fmt: skip
    errors = [error for _, id_, error in recorder.seen if id_ == job_id and error]
    assert errors == [
        "RuntimeError: down on attempt 1",
        "RuntimeError: down on attempt 2",
        "RuntimeError: down on attempt 2",
    ]
    dlq = next(e for e in recorder.events if e.event is QueueEvent.JOB_DLQ)
    assert dlq.failed_reason == "RuntimeError: down on attempt 2"
    assert dlq.attempts == 2


async def test_long_failed_reasons_are_cut_at_a_character_boundary(
    make_queue: Callable[..., JobQueue],
) -> None:
    listener, worker = make_queue(), make_queue()
    recorder = Recorder()
    recorder.attach(lambda event, handler: listener.on(event, handler, fleet=True))

    @worker.processor("verbose")
    async def verbose(job: Job[None]) -> None:
        raise ValueError("é" * 5000)  # two bytes each: a cut can land mid-character

    await listener.follow_fleet_events()
    job_id = await worker.add_job("verbose", None, attempts=1)
    await worker.start_worker()
    await recorder.wait_for(1, QueueEvent.JOB_FAILED)
    failed = next(e for e in recorder.events if e.event is QueueEvent.JOB_FAILED)
    assert failed.failed_reason is not None
    assert failed.failed_reason.startswith("ValueError: éé")
    assert len(failed.failed_reason.encode()) <= 1000
    info = await worker.get_job_status(job_id)
    assert info is not None and info.failed_reason is not None
    assert len(info.failed_reason) > 5000  # the job keeps it whole


async def test_progress_and_stalls_reach_the_fleet(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    listener = make_queue()
    worker = make_queue(settings=QueueSettings(max_stalled_interval=100, max_stalled_count=1))
    recorder = Recorder()
    recorder.attach(lambda event, handler: listener.on(event, handler, fleet=True))

    @worker.processor("report")
    async def report(job: Job[None]) -> None:
        await job.update_progress({"done": 50})
        await job.update_progress({"blob": "x" * 2000})  # too big for the stream

    await listener.follow_fleet_events()
    stalled_id = await worker.add_job("report", None)
    plant_stalled_job(port_of(redis_url), worker.name, stalled_id)
    await worker.start_worker()
    await recorder.wait_for(1, QueueEvent.JOB_COMPLETED)

    assert recorder.of(stalled_id) == [
        "job-added", "job-stalled", "job-started", "job-progress", "job-progress",
        "job-completed",
    ]  # fmt: skip
    progress = [e.progress for e in recorder.events if e.event is QueueEvent.JOB_PROGRESS]
    assert progress == [{"done": 50}, None]


@contextlib.asynccontextmanager
async def names_added(
    queue_name: str, redis_url: str
) -> AsyncIterator[tuple[QueueEvents, list[str]]]:
    """A running QueueEvents on the queue, and the names of the jobs it sees added."""
    names: list[str] = []
    async with QueueEvents(queue_name, redis=redis_url) as events:
        events.on(QueueEvent.JOB_ADDED, lambda job: names.append(job.name))
        yield events, names


async def test_queue_events_follows_a_queue_without_a_job_queue(
    make_queue: Callable[..., JobQueue], redis_url: str, queue_name: str
) -> None:
    producer = make_queue()
    async with names_added(queue_name, redis_url) as (events, names):
        await producer.add_jobs([("a", 1), ("b", 2)])
        await eventually(lambda: _value(len(names) == 2))
    assert names == ["a", "b"]
    assert not events._listener.following  # closed: nothing can arrive any more
    with pytest.raises(QueueClosedError):
        await events.start()


async def test_only_events_after_the_start_are_delivered(
    make_queue: Callable[..., JobQueue], redis_url: str, queue_name: str
) -> None:
    producer = make_queue()
    await producer.add_jobs([("before", i) for i in range(3)])
    async with names_added(queue_name, redis_url) as (_, seen):
        await producer.add_job("after", None)
        await eventually(lambda: _value(seen))
    assert seen == ["after"]


def test_one_event_may_list_the_ids_of_a_batch() -> None:
    # Like events of one batch (kind, name, attempts, no detail) are written once.
    payload = "\x1f".join(
        ["job-completed", "1 2 3", "send", "1", "", "job-failed", "4", "send", "2", '"boom"']
    )
    events = parse_entry("1700000000000-0", payload)
    assert [(e.event, e.id, e.attempts) for e in events] == [
        (QueueEvent.JOB_COMPLETED, "1", 1),
        (QueueEvent.JOB_COMPLETED, "2", 1),
        (QueueEvent.JOB_COMPLETED, "3", 1),
        (QueueEvent.JOB_FAILED, "4", 2),
    ]
    assert events[3].failed_reason == "boom"
    assert {e.timestamp for e in events} == {1700000000000}


async def test_a_damaged_entry_is_reported_and_reading_goes_on(
    make_queue: Callable[..., JobQueue], redis_url: str, queue_name: str
) -> None:
    producer = make_queue()
    errors: list[BaseException] = []
    async with names_added(queue_name, redis_url) as (events, names):
        events.on(QueueEvent.QUEUE_ERROR, lambda _job, error: errors.append(error))
        stream = f"jq:{{{queue_name}}}:events"
        port = port_of(redis_url)
        redis_command(port, "XADD", stream, "*", "e", "job-added\x1f1\x1fx")  # cut short
        redis_command(port, "XADD", stream, "*", "e", "job-from-the-future\x1f1\x1fx\x1f0\x1f")
        await producer.add_job("after", None)
        await eventually(lambda: _value(names))
    assert names == ["after"]
    assert len(errors) == 1 and isinstance(errors[0], JobQueueError)
    assert "unreadable events entry" in str(errors[0])


async def test_listener_survives_a_killed_connection(
    make_queue: Callable[..., JobQueue], redis_url: str, queue_name: str
) -> None:
    producer = make_queue()
    async with names_added(queue_name, redis_url) as (events, names):
        events.on(QueueEvent.QUEUE_ERROR, lambda _job, _error: None)
        await producer.add_job("one", None)
        await eventually(lambda: _value(names == ["one"]))
        port = port_of(redis_url)
        clients = redis_command(port, "CLIENT", "LIST")
        assert isinstance(clients, bytes)
        readers = [c.split()[0] for c in clients.decode().splitlines() if "cmd=xread" in c]
        assert len(readers) == 1
        redis_command(port, "CLIENT", "KILL", "ID", readers[0].split("=")[1])
        await producer.add_job("two", None)
        await eventually(lambda: _value(names == ["one", "two"]))


def test_sync_facade_fleet_handlers(redis_url: str, queue_name: str) -> None:
    arrived = threading.Event()
    seen: list[str] = []

    def handler(job: JobEvent) -> None:
        seen.append(job.id)
        arrived.set()

    with (
        SyncJobQueue(queue_name, redis=redis_url) as queue,
        SyncJobQueue(queue_name, redis=redis_url) as producer,
    ):
        queue.on(QueueEvent.JOB_ADDED, handler, fleet=True)  # returns once it follows
        job_id = producer.add_job("sync", None)
        assert arrived.wait(10)
    assert seen == [job_id]


async def test_bad_fleet_registration_is_refused_and_writes_nothing(
    make_queue: Callable[..., JobQueue], redis_url: str, queue_name: str
) -> None:
    queue = make_queue()
    before = redis_keys(port_of(redis_url))
    with pytest.raises(InvalidOptionError, match="event"):
        queue.on("job-exploded", lambda job: None, fleet=True)
    with pytest.raises(InvalidOptionError, match="handler"):
        queue.on(QueueEvent.JOB_ADDED, "not callable", fleet=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="name"):
        QueueEvents("bad{name}", redis=redis_url)
    assert redis_keys(port_of(redis_url)) == before


async def test_off_removes_a_fleet_handler(make_queue: Callable[..., JobQueue]) -> None:
    listener, producer = make_queue(), make_queue()
    kept: list[str] = []
    removed: list[str] = []

    def drop(job: Any) -> None:
        removed.append(job.id)

    listener.on(QueueEvent.JOB_ADDED, lambda job: kept.append(job.id), fleet=True)
    listener.on(QueueEvent.JOB_ADDED, drop, fleet=True)
    listener.off(QueueEvent.JOB_ADDED, drop, fleet=True)
    await listener.follow_fleet_events()
    job_id = await producer.add_job("x", None)
    await eventually(lambda: _value(kept))
    assert kept == [job_id] and removed == []


async def test_events_stream_is_capped(make_queue: Callable[..., JobQueue], redis_url: str) -> None:
    queue = make_queue()
    for _ in range(3000):
        await queue.add_jobs([("x", None)])  # one entry each: the most entries per job
    port = port_of(redis_url)
    length = redis_command(port, "XLEN", f"jq:{{{queue.name}}}:events")
    assert isinstance(length, int)
    assert 2000 <= length <= 2100  # MAXLEN ~ 2000 trims whole nodes of 100 entries
    assert (await queue.get_stats()).waiting == 3000
    assert (await queue.get_job_status("1")) is not None
    assert (await queue.get_job_status("1")).status is JobStatus.WAITING  # type: ignore[union-attr]


async def _value(value: Any) -> Any:
    return value
