"""A blocking facade over `jobqueue.JobQueue`, for Django, Flask and scripts.

Each ``jobqueue.sync.JobQueue`` runs a private event loop on a background thread and
waits for its calls; it takes the same arguments as the async class. ``add_job`` does
not use the loop: the calling thread adds its job through the native core, which sends
the adds of concurrent threads as one script call (``src/blocking_add.rs``). Only with a
telemetry adapter or fleet event handlers, whose work happens on the loop, do ``add_job``
calls from many threads go to that loop together and coalesce there (``coalesce.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import queue as async_queue
from .coalesce import ThreadCoalescer
from .errors import RedisOutOfMemoryError
from .events import QueueEvent
from .flows import Flow, FlowIds, FlowTree
from .groups import RateSpec
from .models import GroupStats, HealthReport, JobInfo, JobStatus, QueueStats, ScheduleInfo
from .queue import JobSpec, job_options
from .redis_safety import jobs_not_added
from .workers import WorkerInfo

if TYPE_CHECKING:  # types of the stubs only
    from ._native import AddedJob, NewJob

T = TypeVar("T")
#: One add_job call: (name, data, opts, keyword options).
_AddCall = tuple[str, Any, Any, dict[str, Any]]
#: The keyword options of ``add_job``, as the asyncio queue names them.
_ADD_OPTIONS = frozenset(
    p.name
    for p in inspect.signature(async_queue.JobQueue.add_job).parameters.values()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)

__all__ = ["JobQueue"]


class JobQueue:
    def __init__(self, name: str, **kwargs: Any) -> None:
        # Validate (and fail) on the caller's thread, before any thread is started.
        self._queue = async_queue.JobQueue(name, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"jobqueue-sync-{name}", daemon=True
        )
        self._thread.start()
        self._adds: ThreadCoalescer[_AddCall, str] = ThreadCoalescer(self._add_each)
        # Jobs added from callers' threads whose metrics and events are due on the loop.
        self._added: list[tuple[NewJob, AddedJob]] = []
        self._added_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._queue.name

    @property
    def async_queue(self) -> async_queue.JobQueue:
        """The underlying asyncio queue (its coroutines run on this facade's loop)."""
        return self._queue

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            self._queue._check_open()  # raises QueueClosedError
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on(self, event: QueueEvent | str, handler: Any, *, fleet: bool = False) -> None:
        """As the asyncio queue's ``on``; handlers run on this facade's loop thread. With
        ``fleet=True`` it returns once the queue follows its events stream."""
        self._queue.on(event, handler, fleet=fleet)
        if fleet:
            self._run(self._queue.follow_fleet_events())

    def off(self, event: QueueEvent | str, handler: Any, *, fleet: bool = False) -> None:
        self._queue.off(event, handler, fleet=fleet)

    def add_job(self, name: str, data: Any, opts: Any = None, **options: Any) -> str:
        queue = self._queue
        if (
            queue.telemetry is not None
            or queue._fleet is not None
            or queue._partitions is not None
            or not queue._indexed
            or self._loop.is_closed()
        ):
            # Spans and the fleet listener belong to the loop (a closed loop: raises), and
            # so does the routing of a partitioned queue's jobs; the first add writes the
            # queue's name to the index of queues there.
            return self._adds.call((name, data, opts, options))
        unknown = options.keys() - _ADD_OPTIONS
        if unknown:
            raise TypeError(f"add_job() got an unexpected keyword argument {min(unknown)!r}")
        queue._check_open()
        row = queue._rows([(name, data, job_options(opts, options))], single=True)[0]
        try:
            added = queue._native.add_job_blocking(row)
        except RedisOutOfMemoryError:
            # Reworded with the server's memory figures, as the asyncio queue does.
            raise self._run(jobs_not_added(queue._native, 1)) from None
        if added[1] and (
            queue.metrics is not None or queue._events.has_handlers(QueueEvent.JOB_ADDED)
        ):
            self._report_added(row, added)
        return added[0]

    def _report_added(self, row: NewJob, added: AddedJob) -> None:
        """Count and announce a job on the loop, as the asyncio queue does: handlers run
        there. One loop wake-up serves all the jobs added meanwhile."""
        with self._added_lock:
            self._added.append((row, added))
            if len(self._added) > 1:
                return  # a report is already due
        try:
            self._loop.call_soon_threadsafe(self._flush_added)
        except RuntimeError:  # the loop closed meanwhile: nothing left to tell
            pass

    def _flush_added(self) -> None:
        with self._added_lock:
            added, self._added = self._added, []
        self._queue._report_added([row for row, _ in added], [job for _, job in added])

    def _add_each(self, calls: list[_AddCall]) -> list[str | BaseException]:
        """The add_job calls of several threads, in one trip to the loop; each gets its own
        id or error."""
        queue = self._queue

        async def add_each() -> list[str | BaseException]:
            if len(calls) > 1:
                queue._producer.expect_adds()
            adds = (queue.add_job(name, data, opts, **kw) for name, data, opts, kw in calls)
            return await asyncio.gather(*adds, return_exceptions=True)

        return self._run(add_each())

    def add_jobs(self, jobs: Sequence[JobSpec]) -> list[str]:
        return self._run(self._queue.add_jobs(jobs))

    def add_flow(self, flow: Flow) -> FlowIds:
        return self._run(self._queue.add_flow(flow))

    def get_flow(self, job_id: str) -> FlowTree:
        return self._run(self._queue.get_flow(job_id))

    def get_job_status(self, job_id: str) -> JobInfo | None:
        return self._run(self._queue.get_job_status(job_id))

    def get_jobs_by_status(
        self, status: JobStatus | str, limit: int = 100, *, group: str | None = None
    ) -> list[JobInfo]:
        return self._run(self._queue.get_jobs_by_status(status, limit, group=group))

    @overload
    def get_stats(self) -> QueueStats: ...

    @overload
    def get_stats(self, *, group: str) -> GroupStats: ...

    def get_stats(self, *, group: str | None = None) -> QueueStats | GroupStats:
        if group is not None:
            return self._run(self._queue.get_group_stats(group))
        return self._run(self._queue.get_stats())

    def set_global_concurrency(self, limit: int | None) -> None:
        self._run(self._queue.set_global_concurrency(limit))

    def set_group_limit(
        self, group: str, *, concurrency: int | None = None, rate: RateSpec | None = None
    ) -> None:
        self._run(self._queue.set_group_limit(group, concurrency=concurrency, rate=rate))

    def remove_group_limit(self, group: str) -> None:
        self._run(self._queue.remove_group_limit(group))

    def set_default_group_limit(
        self, *, concurrency: int | None = None, rate: RateSpec | None = None
    ) -> None:
        self._run(self._queue.set_default_group_limit(concurrency=concurrency, rate=rate))

    def pause_group(self, group: str) -> None:
        self._run(self._queue.pause_group(group))

    def resume_group(self, group: str) -> None:
        self._run(self._queue.resume_group(group))

    def get_group_stats(self, group: str) -> GroupStats:
        return self._run(self._queue.get_group_stats(group))

    def health_check(self) -> HealthReport:
        return self._run(self._queue.health_check())

    def get_workers(self) -> list[WorkerInfo]:
        return self._run(self._queue.get_workers())

    def remove_job(self, job_id: str) -> None:
        self._run(self._queue.remove_job(job_id))

    def clear(self) -> int:
        return self._run(self._queue.clear())

    def pause(self) -> None:
        self._run(self._queue.pause())

    def resume(self) -> None:
        self._run(self._queue.resume())

    def is_paused(self) -> bool:
        return self._run(self._queue.is_paused())

    def drain(self, include_delayed: bool = False) -> int:
        return self._run(self._queue.drain(include_delayed))

    def schedule_job(self, name: str, data: Any, cron: str, **options: Any) -> str:
        return self._run(self._queue.schedule_job(name, data, cron, **options))

    def schedule_every(
        self, name: str, data: Any, interval_ms: int | timedelta, **options: Any
    ) -> str:
        return self._run(self._queue.schedule_every(name, data, interval_ms, **options))

    def unschedule(self, schedule_id: str) -> bool:
        return self._run(self._queue.unschedule(schedule_id))

    def list_schedules(self) -> list[ScheduleInfo]:
        return self._run(self._queue.list_schedules())

    def run_schedule_now(self, schedule_id: str) -> str:
        return self._run(self._queue.run_schedule_now(schedule_id))

    def retry_job(self, job_id: str) -> None:
        self._run(self._queue.retry_job(job_id))

    def promote_job(self, job_id: str) -> None:
        self._run(self._queue.promote_job(job_id))

    def bulk_retry(self, status: JobStatus | str, limit: int | None = None) -> int:
        return self._run(self._queue.bulk_retry(status, limit))

    def get_dlq_jobs(self, limit: int = 100) -> list[JobInfo]:
        return self._run(self._queue.get_dlq_jobs(limit))

    def replay_dlq(self, limit: int | None = None) -> int:
        return self._run(self._queue.replay_dlq(limit))

    def wait_for(self, job_id: str, timeout: int | timedelta | None = None) -> JobInfo:
        return self._run(self._queue.wait_for(job_id, timeout))

    def close(self, timeout: int | timedelta | None = None) -> None:
        """Close the queue and stop the background loop. Idempotent."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._queue.close(timeout))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
