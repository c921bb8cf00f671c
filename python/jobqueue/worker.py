"""The Python half of a worker: runs processors for the jobs the native core hands over,
reports their results back to it, and turns the outcomes it records into events.

The native core (``jobqueue._native.NativeWorker``) owns everything that touches Redis or
a timer: fetching, locks, acks, the stalled sweep. This module only runs user code.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import _validate as v
from ._native import NativeQueue, NativeWorker
from .errors import JobQueueError, SerializationError
from .events import EventEmitter, QueueEvent
from .job import Job
from .observability import (
    METRIC_JOB_DURATION,
    METRIC_JOB_WAIT,
    METRIC_JOBS_COMPLETED,
    METRIC_JOBS_DLQ,
    METRIC_JOBS_FAILED,
    METRIC_JOBS_RETRIED,
    METRIC_JOBS_RUNNING,
    METRIC_JOBS_STALLED,
)
from .workers import describe

if TYPE_CHECKING:
    from ._native import RawJob
    from .queue import JobQueue

logger = logging.getLogger("jobqueue")

Processor = Callable[[Job[Any]], Any]
#: What the native core recorded for a job: (outcome, id, name, attempts made, max
#: attempts, failed reason, retry delay ms). See src/worker.rs for the outcomes.
Outcome = tuple[str, str, str, int, int, "str | None", int]


class JobTimeoutError(JobQueueError, TimeoutError):
    """A processor ran longer than its job's ``timeout``."""


class JobStalledError(JobQueueError):
    """A job's worker stopped renewing its lock too many times."""


class WorkerError(JobQueueError):
    """A background Redis call of the worker failed (it is retried)."""


def _is_async(fn: Processor) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


class Worker:
    """Runs the processors of one queue until closed."""

    def __init__(
        self,
        queue: JobQueue,
        processors: dict[str, Processor],
        partitions: Sequence[NativeQueue] = (),
    ) -> None:
        """``partitions``: partitions 1.. of a partitioned queue (partition 0 is the
        queue's own): one native worker fetches from all of them (``partitions.rs``)."""
        self._queue = queue
        self._processors = processors
        self._events: EventEmitter = queue._events
        config = queue.config
        settings = config.settings
        limiter = config.worker.limiter
        concurrency = config.worker.concurrency
        self._native = NativeWorker(
            queue._native,
            concurrency=concurrency,
            lock_duration_ms=v.stored_ms(settings.lock_duration),
            lock_renew_ms=v.stored_ms(settings.lock_renew_time or 1),
            stalled_interval_ms=v.stored_ms(settings.max_stalled_interval),
            max_stalled_count=settings.max_stalled_count,
            dlq_enabled=config.dlq.enabled,
            # On a partitioned queue, the whole queue's limit (src/partitions.rs).
            limiter_max=limiter.max if limiter else 0,
            limiter_window_ms=v.stored_ms(limiter.duration) if limiter else 0,
            partitions=list(partitions),
            description=describe(queue.name, config.worker.concurrency),
        )
        self._tracer = queue._tracer
        self._tags_by_name: dict[str, dict[str, str]] = {}
        self._threads = ThreadPoolExecutor(
            max_workers=config.worker.concurrency, thread_name_prefix=f"jobqueue-{queue.name}"
        )
        self._jobs: dict[str, Job[Any]] = {}
        self._async_processors: dict[Processor, bool] = {}
        self._completed: list[tuple[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()  # workers are made by start_worker
        self._watching = False
        self._closed = asyncio.Event()
        # Set once the native fetch loop has ended and its last jobs were started.
        self._fetch_drained = asyncio.Event()

    @property
    def worker_id(self) -> str:
        return self._native.worker_id

    async def start(self) -> None:
        self._native.start()
        # The native core writes to this pipe when deliveries wait: the event loop takes
        # them on its own thread, so no native thread ever waits for the GIL.
        self._loop.add_reader(self._native.wake_fd, self._take_deliveries)
        self._watching = True

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self, timeout_ms: int | None) -> None:
        """Stop fetching, let running jobs finish (up to ``timeout_ms``), write their
        results, release the connections. Jobs still running after the timeout are
        abandoned: their locks lapse and they run again (stall recovery). With a timeout,
        close returns in about that time even when Redis is unreachable."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_ms is None else loop.time() + timeout_ms / 1000

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - loop.time())

        self._native.stop_fetching()
        # Jobs already taken from Redis but still on their way into Python must run too.
        try:
            await asyncio.wait_for(self._fetch_drained.wait(), remaining())
        except asyncio.TimeoutError:
            pass
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=remaining())
            for task in pending:
                task.cancel()
            if pending:
                logger.warning(
                    "jobqueue: %d jobs still running at close were abandoned", len(pending)
                )
                await asyncio.gather(*pending, return_exceptions=True)
        self._flush_completed()
        left = remaining()
        finished = await self._native.close(None if left is None else round(left * 1000))
        if not finished:
            logger.warning(
                "jobqueue: close timed out before every result reached Redis; those jobs "
                "will run again once their locks lapse"
            )
        self._take_deliveries()  # the last outcomes, and the end of the deliveries
        self._stop_watching()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._closed.set()

    def _take_deliveries(self) -> None:
        batch = self._native.take_batch()
        if batch is None:  # closed: everything was delivered
            self._fetch_drained.set()
            self._stop_watching()
            return
        jobs, outcomes, fetch_stopped = batch
        for outcome in outcomes:
            self._on_outcome(outcome)
        for raw in jobs:
            self._start(raw)
        if fetch_stopped:
            self._fetch_drained.set()

    def _stop_watching(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self._native.wake_fd)

    def _start(self, raw: RawJob) -> None:
        try:
            job: Job[Any] = Job(raw, self._native, self._on_progress, self._queue.name)
        except Exception as exc:  # unreadable data: fail the attempt
            self._native.fail(raw[0], f"job data is unreadable: {exc}", "", False)
            return
        self._jobs[job.id] = job
        # The loop's own create_task: asyncio.create_task looks the loop up, and on Python
        # 3.11 each lookup is a getpid() system call (16% of a busy worker's samples).
        task = self._loop.create_task(self._run(job), name=f"jobqueue-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job[Any]) -> None:
        self._events.emit(QueueEvent.JOB_STARTED, job)
        if self._tracer is not None:
            # Ended with the attempt's outcome (_on_outcome); current in this job's task.
            job._span = self._tracer.start_process(job)
        # Without a metrics adapter this costs one test per job (the drain's hot path).
        started = None if self._queue.metrics is None else self._metrics_started(job)
        try:
            processor = self._processors.get(job.name)
            if processor is None:
                job.error = LookupError(f"no processor is registered for job name {job.name!r}")
                self._failed(job)
                self._native.fail(job.id, str(job.error), "")
                return
            try:
                timeout = job.timeout
                work = self._work(processor, job)
                result = await (work if timeout is None else asyncio.wait_for(work, timeout / 1000))
                if result is not None and inspect.isawaitable(result):
                    result = await result  # a plain function that returned a coroutine
            except asyncio.CancelledError:
                raise  # abandoned at close: no result is written, the lock lapses
            except (asyncio.TimeoutError, JobTimeoutError):
                job.error = JobTimeoutError(f"job {job.id} timed out after {job.timeout} ms")
                self._failed(job)
                self._native.fail(job.id, str(job.error), "")
            except Exception as exc:  # the processor's failure is the outcome
                job.error = exc
                self._failed(job)
                stack = "".join(traceback.format_exception(exc))
                self._native.fail(job.id, f"{type(exc).__name__}: {exc}", stack)
            else:
                job.return_value = result
                self._complete_soon(job.id, result)
        finally:
            if started is not None:
                self._metrics_ended(job, started)

    def _tags(self, name: str) -> dict[str, str]:
        """The metrics tags of jobs named ``name`` (made once per name)."""
        tags = self._tags_by_name.get(name)
        if tags is None:
            if len(self._tags_by_name) > 1024:
                self._tags_by_name.clear()
            tags = self._tags_by_name[name] = {"queue": self._queue.name, "job": name}
        return tags

    def _metrics_started(self, job: Job[Any]) -> float:
        """Report an attempt's start (running +1; the wait of a first attempt)."""
        metrics, tags = self._queue.metrics, self._tags(job.name)
        assert metrics is not None
        if job.attempts_made == 1:
            metrics.observe(METRIC_JOB_WAIT, max(0, job.processed_at - job.created_at), tags)
        metrics.increment(METRIC_JOBS_RUNNING, 1, tags)
        return time.perf_counter()

    def _metrics_ended(self, job: Job[Any], started: float) -> None:
        metrics, tags = self._queue.metrics, self._tags(job.name)
        if metrics is not None:
            metrics.increment(METRIC_JOBS_RUNNING, -1, tags)
            metrics.observe(METRIC_JOB_DURATION, (time.perf_counter() - started) * 1000, tags)

    @staticmethod
    def _failed(job: Job[Any]) -> None:
        """Record the attempt's error on its span."""
        if job._span is not None and job.error is not None:
            job._span.record_exception(job.error)

    def _work(self, processor: Processor, job: Job[Any]) -> Awaitable[Any]:
        """The processor's run as an awaitable: its coroutine, or its thread's future."""
        is_async = self._async_processors.get(processor)
        if is_async is None:  # inspecting a processor costs more than a no-op job
            is_async = self._async_processors[processor] = _is_async(processor)
        if is_async:
            work: Awaitable[Any] = processor(job)
            return work
        # A `def` processor past its timeout cannot be stopped; its thread runs on and its
        # late result is ignored.
        if self._tracer is not None:  # the thread runs in the job's trace context
            run = contextvars.copy_context().run
            return self._loop.run_in_executor(self._threads, run, processor, job)
        return self._loop.run_in_executor(self._threads, processor, job)

    def _complete_soon(self, job_id: str, result: Any) -> None:
        """Hand a result to the native core with the others of this loop iteration: one
        crossing into Rust per batch of finished jobs, not one per job."""
        if not self._completed:
            self._loop.call_soon(self._flush_completed)
        self._completed.append((job_id, result))

    def _flush_completed(self) -> None:
        completed, self._completed = self._completed, []
        if not completed:
            return
        # Completions nothing listens to are not reported back: their jobs are done here.
        report = self._reports_completions()
        try:
            refused = self._native.complete_many(completed, report)
            if not report:
                refused_ids = {job_id for job_id, _ in refused}
                metrics = self._queue.metrics
                for job_id, _ in completed:
                    if job_id not in refused_ids:
                        job = self._jobs.pop(job_id, None)
                        # Counted as handed over: a report back per job costs more.
                        if metrics is not None and job is not None:
                            self._count(METRIC_JOBS_COMPLETED, job.name)
            for job_id, message in refused:
                error = SerializationError(message)
                job = self._jobs.get(job_id)
                if job is not None:
                    job.error = error
                self._native.fail(job_id, f"the processor's return value is not JSON: {error}", "")
        except JobQueueError as exc:  # the native worker is closed: nothing can be written
            self._queue_error(exc)

    def _reports_completions(self) -> bool:
        queue = self._queue
        return (
            self._events.has_handlers(QueueEvent.JOB_COMPLETED)
            or self._tracer is not None  # the attempt's span ends with its outcome
            or bool(queue._waiters)
        )

    def _on_progress(self, job: Job[Any]) -> None:
        self._events.emit(QueueEvent.JOB_PROGRESS, job)

    def _on_outcome(self, outcome: Outcome) -> None:
        kind, job_id, name, _attempts, _max_attempts, reason, delay = outcome
        if kind == "error":
            self._queue_error(WorkerError(f"{name}: {reason}"))
            return
        job = self._jobs.pop(job_id, None) if kind not in ("stalled",) else None
        if job is not None and job._span is not None:
            span, job._span = job._span, None
            self._tracer.end_process(span, kind, delay, job.error)  # type: ignore[union-attr]
        emit = self._events.emit
        if kind == "completed":
            emit(QueueEvent.JOB_COMPLETED, job)
            self._count(METRIC_JOBS_COMPLETED, name)
        elif kind == "retrying":
            emit(QueueEvent.JOB_RETRYING, job, self._error_of(job, reason))
            self._count(METRIC_JOBS_RETRIED, name)
        elif kind in ("failed", "dlq"):
            error = self._error_of(job, reason)
            emit(QueueEvent.JOB_FAILED, job, error)
            self._count(METRIC_JOBS_FAILED, name)
            if kind == "dlq":
                self._dead_lettered(job, error, name)
        elif kind == "lost":
            logger.warning("jobqueue: lost the lock of job %s; its result was not stored", job_id)
        elif kind.startswith("stalled"):
            self._stalled(kind, job_id, name)
        self._queue._resolve_waiters(job_id, kind)

    def _dead_lettered(self, job: Job[Any] | None, error: BaseException, name: str) -> None:
        self._events.emit(QueueEvent.JOB_DLQ, job, error)
        self._count(METRIC_JOBS_DLQ, name)
        handler = self._queue.config.dlq.notification_handler
        if handler is None:
            return
        try:
            result = handler(job)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(self._handler_done)
        except Exception as exc:  # a handler must not break the worker
            self._queue_error(exc)

    def _handler_done(self, task: asyncio.Future[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._queue_error(error)

    def _stalled(self, kind: str, job_id: str, name: str) -> None:
        info = _StalledJob(job_id, name)
        self._events.emit(QueueEvent.JOB_STALLED, info)
        self._count(METRIC_JOBS_STALLED, name)
        if self._tracer is not None:
            self._tracer.stalled(job_id, name, kind)
        if kind != "stalled":
            error = JobStalledError(f"job {job_id} stalled too many times")
            self._events.emit(QueueEvent.JOB_FAILED, info, error)
            if kind == "stalled-dlq":
                self._events.emit(QueueEvent.JOB_DLQ, info, error)

    @staticmethod
    def _error_of(job: Job[Any] | None, reason: str | None) -> BaseException:
        if job is not None and job.error is not None:
            return job.error
        return JobQueueError(reason or "job failed")

    def _queue_error(self, exc: BaseException) -> None:
        self._queue._report_error(exc)

    def _count(self, metric: str, name: str) -> None:
        metrics = self._queue.metrics
        if metrics is not None:
            metrics.increment(metric, 1, self._tags(name))


class _StalledJob:
    """What JOB_STALLED handlers get: the stalled job's id and name (its processor ran in
    another process, or in this one before it lost the job)."""

    __slots__ = ("id", "name")

    def __init__(self, job_id: str, name: str) -> None:
        self.id = job_id
        self.name = name

    def __repr__(self) -> str:
        return f"StalledJob(id={self.id!r}, name={self.name!r})"
