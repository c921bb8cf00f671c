"""Fleet events: the events of every process of a queue, read from its capped Redis stream.

Every script that changes a job appends the events it causes to the stream
``P:{Q}:events`` (see ``docs/redis-layout.md``). A `FleetListener` follows the
stream with a blocking ``XREAD`` on its own connection and dispatches each event to the
handlers of an `EventEmitter`. Handlers get a `JobEvent`
(and, for failures, a `JobQueueError` carrying the reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ._native import NativeQueue
from .errors import JobQueueError
from .events import EventEmitter, QueueEvent
from .redis_config import RedisConfig

#: How long one ``XREAD`` blocks; bounds how long a stopped listener's read lingers.
READ_BLOCK_MS = 1000
#: Entries taken per read (each holds the events of one script call).
READ_COUNT = 100
#: Pause after a failed read, doubling up to the maximum, so a Redis outage is not a spin.
RETRY_PAUSE_S = 0.1
RETRY_PAUSE_MAX_S = 5.0

_FAILURES = (QueueEvent.JOB_FAILED, QueueEvent.JOB_RETRYING, QueueEvent.JOB_DLQ)
_SEPARATOR = "\x1f"
_VALUES_PER_EVENT = 5


@dataclass(frozen=True)
class JobEvent:
    """A job's event as any process of the queue wrote it.

    ``timestamp`` is when it happened (ms, the Redis clock). ``failed_reason`` is set for
    failures (cut to 1,000 bytes; the job keeps it whole) and ``progress`` for progress
    events (left out when its JSON is over 1,000 bytes). Read the job itself, return value
    included, with ``get_job_status(event.id)``.
    """

    event: QueueEvent
    id: str
    name: str
    attempts: int
    timestamp: int
    failed_reason: str | None = None
    progress: Any = None
    #: For ``GROUP_LIMIT_CHANGED``: the new limit, ``{"concurrency": n | None, "rate":
    #: {"max": n, "duration": ms} | None}``.
    limit: Any = None


def parse_entry(entry_id: str, payload: str) -> list[JobEvent]:
    """The events of one stream entry: 5 values per event joined by ``\\x1f`` (event, id,
    name, attempts, detail: '' or JSON). The id value may list several ids separated by
    spaces: like events of one batch, written once. An unknown event kind is skipped
    (written by a newer version)."""
    timestamp = int(entry_id.split("-", 1)[0])
    values = payload.split(_SEPARATOR)
    if len(values) % _VALUES_PER_EVENT:
        raise ValueError(f"{len(values)} values do not make whole events")
    events: list[JobEvent] = []
    for i in range(0, len(values), _VALUES_PER_EVENT):
        kind_name, job_id, name, attempts, detail = values[i : i + _VALUES_PER_EVENT]
        try:
            kind = QueueEvent(kind_name)
        except ValueError:
            continue
        decoded = orjson.loads(detail) if detail else None
        events.extend(
            JobEvent(
                kind,
                one_id,
                name,
                int(attempts),
                timestamp,
                failed_reason=decoded if kind in _FAILURES else None,
                progress=decoded if kind is QueueEvent.JOB_PROGRESS else None,
                limit=decoded if kind is QueueEvent.GROUP_LIMIT_CHANGED else None,
            )
            for one_id in job_id.split(" ")
        )
    return events


class FleetListener:
    """Follows a queue's events stream from the moment `start()` returns."""

    def __init__(self, native: NativeQueue, emitter: EventEmitter) -> None:
        self._native = native
        self._emitter = emitter
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None

    def start_soon(self) -> None:
        """Start from a running event loop without waiting; `start()` waits for it."""
        failed = self._starting is not None and self._starting.done() and self._task is None
        if self._starting is None or failed:  # a start that failed is tried again
            self._starting = asyncio.ensure_future(self._start())
            self._starting.add_done_callback(self._started)

    def _started(self, starting: asyncio.Future[None]) -> None:
        if not starting.cancelled() and starting.exception() is not None:
            self._report(starting.exception())  # type: ignore[arg-type]

    async def start(self) -> None:
        """Begin following; events written after this returns are delivered."""
        self.start_soon()
        assert self._starting is not None
        await asyncio.shield(self._starting)

    @property
    def following(self) -> bool:
        """True while the listener reads the stream."""
        return self._task is not None and not self._task.done()

    async def _start(self) -> None:
        ((position, _),) = await self._native.read_events(None, 0, 0)
        self._task = asyncio.create_task(self._follow(position), name="jobqueue-fleet-events")

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        self._starting = None

    async def _follow(self, position: str) -> None:
        pause = RETRY_PAUSE_S
        while True:
            try:
                entries = await self._native.read_events(position, READ_COUNT, READ_BLOCK_MS)
            except JobQueueError as exc:
                self._report(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_PAUSE_MAX_S)
                continue
            pause = RETRY_PAUSE_S
            for entry_id, payload in entries:
                position = entry_id
                try:
                    events = parse_entry(entry_id, payload)
                except (ValueError, TypeError, IndexError) as exc:
                    self._report(JobQueueError(f"unreadable events entry {entry_id}: {exc}"))
                    continue
                for event in events:
                    error = (
                        JobQueueError(event.failed_reason or "job failed")
                        if event.event in _FAILURES
                        else None
                    )
                    self._emitter.emit(event.event, event, error)

    def _report(self, exc: BaseException) -> None:
        self._emitter.report_error(exc, "reading fleet events failed")


class QueueEvents:
    """The events of every process of a queue, without a ``JobQueue``.

    >>> async with QueueEvents("emails", redis="redis://localhost") as events:
    ...     events.on(QueueEvent.JOB_COMPLETED, lambda job: print(job.id))

    Entering the context (or awaiting `start()`) returns once the listener follows
    the stream; later events are delivered. ``QUEUE_ERROR`` handlers get read errors.
    """

    def __init__(
        self,
        name: str,
        *,
        redis: RedisConfig | str | Mapping[str, Any] | None = None,
        prefix: str = "jq",
        partitions: int = 1,
    ) -> None:
        from .partitions import fleet_listener
        from .queue import JobQueue  # the queue validates the name, prefix and connection

        self._queue = JobQueue(name, redis=redis, prefix=prefix, partitions=partitions)
        self.name = self._queue.name
        self._emitter = EventEmitter()
        # A partitioned queue's events are in one stream per partition: one listener each.
        self._listener = fleet_listener(self._queue._natives, self._emitter)

    def __repr__(self) -> str:
        return f"QueueEvents({self.name!r}, prefix={self._queue.prefix!r})"

    def on(self, event: QueueEvent | str, handler: Callable[..., Any]) -> None:
        self._emitter.on(event, handler)

    def off(self, event: QueueEvent | str, handler: Callable[..., Any]) -> None:
        self._emitter.off(event, handler)

    async def start(self) -> None:
        from .partitions import check_stored

        self._queue._check_open()
        # A listener of another partition count would miss partitions: refused.
        await check_stored(self._queue._native, self.name, self._queue.partitions)
        await self._listener.start()

    async def close(self) -> None:
        await self._listener.stop()
        await self._emitter.wait_idle()
        await self._queue.close()

    async def __aenter__(self) -> QueueEvents:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
