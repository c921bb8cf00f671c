"""``JobQueue``: the public asyncio API of a queue (producer and admin side)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, overload

import orjson

from . import _validate as v
from ._native import NativeQueue
from .config import (
    DEFAULT_RETENTION,
    NO_JOB_OPTIONS,
    DLQConfig,
    Durability,
    JobOptions,
    QueueConfig,
    QueueSettings,
    Retention,
    RetryConfig,
    WorkerConfig,
)
from .errors import (
    InvalidOptionError,
    JobNotFoundError,
    JobQueueError,
    QueueClosedError,
    RedisOutOfMemoryError,
)
from .events import EventEmitter, QueueEvent
from .fleet import FleetListener
from .groups import GroupAdmin
from .loop_connection import ProducerConnections
from .models import (
    GroupStats,
    HealthReport,
    JobInfo,
    JobStatus,
    QueueStats,
    ScheduleInfo,
    Severity,
    job_options_shown,
)
from .observability import METRIC_JOBS_ADDED, MetricsAdapter, Telemetry, check_adapter
from .operations import Operations
from .partitions import (
    SEPARATOR,
    FleetListeners,
    Partitions,
    check_count,
    check_stored,
    fleet_listener,
    is_partition_name,
    partition_name,
)
from .redis_config import RedisConfig
from .redis_safety import RedisSafety, jobs_not_added, read_findings
from .tracing import JobTracer

# Imported where they are first needed, not by `import jobqueue`: flows (add_flow,
# get_flow), the worker (start_worker) and the scheduler (its cron and time-zone modules).
if TYPE_CHECKING:
    from ._native import AddedJob, NewJob  # types of the stubs only
    from .flows import Flow, FlowAdder, FlowIds, FlowTree
    from .scheduler import Scheduler
    from .worker import Processor, Worker
    from .workers import WorkerInfo

#: A job for ``add_jobs``: ``(name, data)`` or ``(name, data, options)``.
JobSpec = tuple[str, Any] | tuple[str, Any, "JobOptions | Mapping[str, Any] | None"]

_FORBIDDEN_IN_NAMES = "{}"
#: Distinct per-job option sets whose resolved form is remembered (the common case is one).
_RESOLVED_CACHE_SIZE = 256
#: Job names known to be valid, so that a batch validates each distinct name once.
_VALID_NAMES_CACHE_SIZE = 1024


def _durability(
    durability: Durability | None, command_timeout_ms: int | None
) -> tuple[int, int] | None:
    """The native form of ``QueueSettings.durability``: (replicas, timeout ms). ``WAIT``
    runs in the same request as the write, so it must end within the command timeout:
    else a write that happened would be reported as a broken connection."""
    if durability is None:
        return None
    timeout_ms = v.stored_ms(durability.timeout)
    if command_timeout_ms is not None and timeout_ms >= command_timeout_ms:
        raise InvalidOptionError(
            "settings.durability.timeout",
            f"must be shorter than redis.command_timeout ({command_timeout_ms} ms), "
            f"got {timeout_ms} ms: WAIT runs within the write's request",
        )
    return durability.replicas, timeout_ms


def _queue_name(name: object) -> str:
    name = v.text(name, "name", max_length=200)
    if any(c in _FORBIDDEN_IN_NAMES or c.isspace() or not c.isprintable() for c in name):
        raise InvalidOptionError(
            "name", f"must not contain braces, whitespace or control characters, got {name!r}"
        )
    if is_partition_name(name):
        raise InvalidOptionError(
            "name",
            f"must not end in '{SEPARATOR}' and digits (the form of a partitioned queue's "
            f"partition keys), got {name!r}",
        )
    return name


def _prefix(prefix: object) -> str:
    prefix = v.text(prefix, "prefix", max_length=100)
    if any(c in prefix for c in _FORBIDDEN_IN_NAMES):
        raise InvalidOptionError("prefix", f"must not contain braces, got {prefix!r}")
    return prefix


def _status(status: object) -> JobStatus:
    return v.member(JobStatus, status, "status")


class _Resolved:
    """A job's options after defaults are applied, in the form the add script takes."""

    __slots__ = ("attempts", "delay", "jitter", "opts_json", "priority")

    def __init__(self, options: JobOptions, retry: RetryConfig) -> None:
        self.attempts = options.attempts or retry.max_attempts
        self.delay = v.stored_ms(options.delay or 0)
        self.jitter = v.stored_ms(options.jitter or 0)
        self.priority = options.priority or 0
        backoff = options.backoff or retry.backoff()
        complete = options.remove_on_complete or DEFAULT_RETENTION
        fail = options.remove_on_fail or DEFAULT_RETENTION
        assert isinstance(complete, Retention) and isinstance(fail, Retention)
        # Delay and priority are stored beside the options, not in them: Redis keeps each
        # distinct options text once per queue (docs/redis-layout.md), and these two often
        # differ from job to job.
        self.opts_json = orjson.dumps(
            {
                "attempts": self.attempts,
                "jitter": self.jitter,
                "backoff": backoff.to_dict(),  # type: ignore[union-attr]
                "timeout": options.timeout,
                "remove_on_complete": complete.to_dict(),
                "remove_on_fail": fail.to_dict(),
            }
        ).decode()

    def delay_with_jitter(self) -> int:
        return self.delay + (random.randint(0, self.jitter) if self.jitter else 0)


class JobQueue(GroupAdmin, Operations):
    """A named queue on Redis. Creating one connects to nothing and writes nothing; the
    first call that needs Redis connects."""

    def __init__(
        self,
        name: str,
        *,
        redis: RedisConfig | str | Mapping[str, Any] | None = None,
        default_job_options: JobOptions | Mapping[str, Any] | None = None,
        retry: RetryConfig | Mapping[str, Any] | None = None,
        dlq: DLQConfig | Mapping[str, Any] | None = None,
        settings: QueueSettings | Mapping[str, Any] | None = None,
        worker: WorkerConfig | Mapping[str, Any] | None = None,
        telemetry: Telemetry | None = None,
        metrics: MetricsAdapter | None = None,
        prefix: str = "jq",
        partitions: int = 1,
    ) -> None:
        self.name = _queue_name(name)
        self.prefix = _prefix(prefix)
        self.partitions = check_count(partitions)
        self.redis_config = RedisConfig.coerce(redis)
        self.config = QueueConfig(
            default_job_options=default_job_options or JobOptions(),  # type: ignore[arg-type]
            retry=retry or RetryConfig(),  # type: ignore[arg-type]
            dlq=dlq or DLQConfig(),  # type: ignore[arg-type]
            settings=settings or QueueSettings(),  # type: ignore[arg-type]
            worker=worker or WorkerConfig(),  # type: ignore[arg-type]
        )
        self.telemetry: Telemetry | None = check_adapter(telemetry, Telemetry, "telemetry")
        if metrics is None and isinstance(telemetry, MetricsAdapter):
            metrics = telemetry  # an adapter of both (OtelTelemetry) serves both
        self.metrics: MetricsAdapter | None = check_adapter(metrics, MetricsAdapter, "metrics")
        #: The spans of jobs, made only with a telemetry adapter.
        self._tracer = None if telemetry is None else JobTracer(telemetry, self.name)
        self._events = EventEmitter()
        self._fleet_events = EventEmitter()
        self._fleet: FleetListener | FleetListeners | None = None
        self._resolved: dict[JobOptions, _Resolved] = {}
        self._default_resolved: _Resolved | None = None
        self._valid_names: set[str] = set()
        self._processors: dict[str, Processor] = {}
        self._worker: Worker | None = None
        self._scheduler: Scheduler | None = None
        self._waiters: dict[str, list[asyncio.Future[str]]] = {}
        self._closed = False
        settings_ = self.config.settings
        connection = self.redis_config.native_kwargs()
        durability = _durability(settings_.durability, connection["command_timeout_ms"])
        safety = None
        if settings_.on_unsafe_redis != "ignore":
            safety = RedisSafety(settings_.on_unsafe_redis, self._report_warning)

        def native_queue(name: str) -> NativeQueue:
            return NativeQueue(
                name,
                self.prefix,
                **connection,
                max_payload_bytes=settings_.max_payload_bytes,
                idempotency_ttl_ms=v.stored_ms(settings_.idempotency_ttl),
                on_connect=None if safety is None else safety.on_connect,
                durability=durability,
            )

        try:
            self._native = native_queue(self.name)
            self._partitions: Partitions | None = None
            if self.partitions > 1:
                self._partitions = Partitions(
                    self.name, self.partitions, self._native, native_queue
                )
        except JobQueueError as exc:
            raise InvalidOptionError("redis", str(exc)) from None
        # Reads and management go to every partition, or to a job's own, through this.
        self._admin: NativeQueue | Partitions = self._partitions or self._native
        self._producer = ProducerConnections(self._native)
        self._flows: FlowAdder | None = None

    def __repr__(self) -> str:
        parts = f", partitions={self.partitions}" if self.partitions > 1 else ""
        return f"JobQueue({self.name!r}, prefix={self.prefix!r}{parts})"

    async def __aenter__(self) -> JobQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- events ---------------------------------------------------------------------------

    def on(
        self, event: QueueEvent | str, handler: Callable[..., Any], *, fleet: bool = False
    ) -> None:
        """Call ``handler`` on ``event`` (sync or async; see `jobqueue.events`).

        With ``fleet=True`` the handler gets the event from every process of the queue,
        this one included, as a `JobEvent` read from the queue's
        events stream. Following the stream starts now when called from a running event
        loop, else with the queue's first ``add_job``/``add_jobs``/``start_worker``; events
        written after that are delivered.
        """
        if not fleet:
            self._events.on(event, handler)
            return
        self._fleet_events.on(event, handler)
        if self._fleet is None:
            self._fleet = fleet_listener(self._natives, self._fleet_events)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._fleet.start_soon()

    def off(
        self, event: QueueEvent | str, handler: Callable[..., Any], *, fleet: bool = False
    ) -> None:
        (self._fleet_events if fleet else self._events).off(event, handler)

    async def follow_fleet_events(self) -> None:
        """Return once the fleet handlers get every event written from now on. Called by
        ``add_job``, ``add_jobs`` and ``start_worker`` (so this process's own events are
        never missed); call it to be sure of events that other processes cause."""
        self._check_open()
        if self._fleet is not None:
            await self._fleet.start()

    # -- processing -------------------------------------------------------------------------

    def process(self, name: str, processor: Processor) -> None:
        """Run ``processor(job)`` for jobs named ``name``: ``async def`` processors as
        asyncio tasks, plain functions in a thread pool."""
        v.job_name(name)
        if not callable(processor):
            raise InvalidOptionError("processor", f"must be callable, got {v.type_name(processor)}")
        self._processors[name] = processor

    def processor(self, name: str) -> Callable[[Processor], Processor]:
        """Decorator form of `process()`."""

        def register(fn: Processor) -> Processor:
            self.process(name, fn)
            return fn

        return register

    async def start_worker(self) -> None:
        """Start processing in the background; returns once the worker runs."""
        self._check_open()
        await self.follow_fleet_events()
        if self._worker is None:
            # Connect here, on this event loop: a refused Redis raises from this call, and
            # the worker's own reconnects report on this loop.
            await asyncio.gather(*(native.connect() for native in self._natives))
            # A worker serving another partition count than the stored one would leave
            # partitions unserved: refused (one round trip per start, none per job).
            await check_stored(self._native, self.name, self.partitions)
            await self._index()
            from .worker import Worker

            worker = Worker(self, self._processors, self._natives[1:])
            await worker.start()
            self._worker = worker
            if self.config.worker.scheduler:
                from .scheduler import Scheduler

                self._scheduler = Scheduler(self, self._native)
                self._scheduler.start()

    async def run_worker(self) -> None:
        """Process in the foreground until `close()`."""
        await self.start_worker()
        assert self._worker is not None
        await self._worker.wait_closed()

    @property
    def _natives(self) -> list[NativeQueue]:
        return [self._native] if self._partitions is None else self._partitions.natives

    @property
    def worker_id(self) -> str | None:
        return None if self._worker is None else self._worker.worker_id

    def _report_error(self, exc: BaseException, *, warning: bool = False) -> None:
        """An error of the queue's background work: ``QUEUE_ERROR``, or the log (both for
        a warning)."""
        what = f"queue {self.name!r}: {exc}" if warning else f"error in queue {self.name!r}"
        self._events.report_error(exc, what, warning=warning)

    def _report_warning(self, exc: BaseException) -> None:
        self._report_error(exc, warning=True)

    # -- producing --------------------------------------------------------------------------

    async def add_job(
        self,
        name: str,
        data: Any,
        opts: JobOptions | Mapping[str, Any] | None = None,
        *,
        attempts: int | None = None,
        delay: int | timedelta | None = None,
        priority: int | None = None,
        backoff: Any = None,
        timeout: int | timedelta | None = None,
        idempotency_key: str | None = None,
        jitter: int | timedelta | None = None,
        job_id: str | None = None,
        remove_on_complete: bool | int | timedelta | Retention | None = None,
        remove_on_fail: bool | int | timedelta | Retention | None = None,
        group: str | None = None,
        partition_key: str | None = None,
    ) -> str:
        """Enqueue one job and return its id. A repeated ``idempotency_key`` (within
        ``settings.idempotency_ttl``) or an existing ``job_id`` returns that job's id and
        enqueues nothing."""
        overrides = {
            "attempts": attempts,
            "delay": delay,
            "priority": priority,
            "backoff": backoff,
            "timeout": timeout,
            "idempotency_key": idempotency_key,
            "jitter": jitter,
            "job_id": job_id,
            "remove_on_complete": remove_on_complete,
            "remove_on_fail": remove_on_fail,
            "group": group,
            "partition_key": partition_key,
        }
        ids = await self._add([(name, data, job_options(opts, overrides))], single=True)
        return ids[0]

    async def add_flow(self, flow: Flow) -> FlowIds:
        """Add a job and the jobs it waits for (``Flow(name, data, children=[...])``, any
        depth, children in other queues too) and return their ids as a tree. One script
        call per queue slot involved; bad input anywhere in the tree raises before
        anything is written. Give the jobs idempotency keys to make a retried add safe:
        adding the same flow again then adds nothing twice (docs/flows.md)."""
        self._check_open()
        return await self._flow_adder().add(flow)

    def _flow_adder(self) -> FlowAdder:
        if self._flows is None:
            from .flows import FlowAdder

            self._flows = FlowAdder(self)
        return self._flows

    async def get_flow(self, job_id: str) -> FlowTree:
        """The flow under job ``job_id`` of this queue: each job's snapshot (its status
        included) and its children's, to the leaves."""
        self._check_open()
        v.job_id(job_id)
        slot = self.name
        if self._partitions is not None:
            slot = partition_name(self.name, self._partitions.router.of_id(job_id))
        return await self._flow_adder().get_flow(slot, job_id)

    async def add_jobs(self, jobs: Sequence[JobSpec]) -> list[str]:
        """Enqueue many jobs in one round trip; one bad item refuses the whole batch."""
        if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Sequence):
            raise InvalidOptionError("jobs", f"must be a list of tuples, got {v.type_name(jobs)}")
        items: list[tuple[str, Any, JobOptions]] = []
        for i, spec in enumerate(jobs):
            if not isinstance(spec, tuple) or len(spec) not in (2, 3):
                raise InvalidOptionError(
                    f"jobs[{i}]", "must be a tuple (name, data) or (name, data, options)"
                )
            try:
                options = JobOptions.coerce(spec[2] if len(spec) == 3 else None)
            except InvalidOptionError as exc:
                raise InvalidOptionError(f"jobs[{i}].{exc.field}", _message(exc)) from None
            items.append((spec[0], spec[1], options))
        if not items:
            self._check_open()
            return []
        return await self._add(items, single=False)

    async def _add(self, items: list[tuple[str, Any, JobOptions]], *, single: bool) -> list[str]:
        self._check_open()
        if self._fleet is not None:
            await self.follow_fleet_events()
        span = trace = None
        if self._tracer is not None:
            span, trace = self._tracer.start_send(len(items))
        try:
            rows = self._rows(items, single=single, trace=trace)
        except BaseException as exc:
            if span is not None:
                span.record_exception(exc)
                span.end()
            raise
        try:
            if self._partitions is not None:
                keys = [options.partition_key for _, _, options in items]
                placed = self._partitions.place(rows, keys, single)
                results = await self._partitions.add(placed, single)
            elif single:  # concurrent single adds coalesce (coalesce.py)
                results = [await self._producer.add_job(rows[0])]
                if span is not None:
                    span.set_attribute("messaging.message.id", results[0][0])
            else:
                results = await self._producer.add_jobs(rows)
        except RedisOutOfMemoryError:
            # Reworded with the server's memory figures; the script wrote nothing.
            refused = await jobs_not_added(self._native, len(rows))
            if span is not None:
                span.record_exception(refused)
            raise refused from None
        except BaseException as exc:
            if span is not None:
                span.record_exception(exc)
            raise
        finally:
            if span is not None:
                span.end()
        if not self._indexed:  # after the first add that went through: bad input writes nothing
            await self._index()
        self._report_added(rows, results)
        return [job_id for job_id, _, _, _ in results]

    def _rows(
        self, items: list[tuple[str, Any, JobOptions]], *, single: bool, trace: str | None = None
    ) -> list[NewJob]:
        """The jobs as the native core takes them; bad names and options raise here.
        ``trace``: the trace context to store in each (see jobqueue.tracing)."""
        rows: list[NewJob] = []
        for i, (name, data, options) in enumerate(items):
            try:
                if type(name) is not str or name not in self._valid_names:
                    self._valid_names.add(v.job_name(name))
                    if len(self._valid_names) > _VALID_NAMES_CACHE_SIZE:
                        self._valid_names.clear()
                resolved = self._resolve(options)
            except InvalidOptionError as exc:
                if single:
                    raise
                raise InvalidOptionError(f"jobs[{i}].{exc.field}", _message(exc)) from None
            rows.append(
                (
                    options.job_id,
                    name,
                    data,
                    resolved.opts_json,
                    resolved.priority,
                    resolved.delay_with_jitter(),
                    resolved.attempts,
                    options.idempotency_key,
                    options.group,
                    trace,
                )
            )
        return rows

    def _report_added(self, rows: list[NewJob], results: list[AddedJob]) -> None:
        """The metrics and JOB_ADDED events of the jobs that an add created."""
        if self.metrics is None and not self._events.has_handlers(QueueEvent.JOB_ADDED):
            return  # most queues: nothing to count
        created = sum(1 for _, was_created, _, _ in results if was_created)
        if created and self.metrics is not None:
            by_name: dict[str, int] = {}
            for row, (_, was_created, _, _) in zip(rows, results, strict=True):
                if was_created:
                    by_name[row[1]] = by_name.get(row[1], 0) + 1
            for name, count in by_name.items():
                self.metrics.increment(METRIC_JOBS_ADDED, count, {"queue": self.name, "job": name})
        if created and self._events.has_handlers(QueueEvent.JOB_ADDED):
            for row, (job_id, was_created, created_at, status) in zip(rows, results, strict=True):
                if was_created:
                    self._events.emit(
                        QueueEvent.JOB_ADDED, _added_job(job_id, row, created_at, status)
                    )

    def _resolve(self, options: JobOptions) -> _Resolved:
        if options is NO_JOB_OPTIONS and self._default_resolved is not None:
            return self._default_resolved  # skips hashing the options: most jobs have none
        resolved = self._resolved.get(options)
        if resolved is None:
            merged = options.merged_over(self.config.default_job_options)
            resolved = _Resolved(merged, self.config.retry)
            if len(self._resolved) < _RESOLVED_CACHE_SIZE:
                self._resolved[options] = resolved
            if options is NO_JOB_OPTIONS:
                self._default_resolved = resolved
        return resolved

    # -- reading --------------------------------------------------------------------------

    async def get_job_status(self, job_id: str) -> JobInfo | None:
        """A snapshot of the job, or None when no such job exists (any more)."""
        self._check_open()
        v.job_id(job_id)
        found = await self._admin.get_job(job_id)
        if found is None:
            return None
        fields, logs, paused = found
        return JobInfo.from_redis(job_id, fields, logs, paused)

    async def get_jobs_by_status(
        self, status: JobStatus | str, limit: int = 100, *, group: str | None = None
    ) -> list[JobInfo]:
        """Jobs in ``status``: waiting/paused/delayed/active in the order they will run
        (ungrouped waiting jobs first, then each group's), completed/failed/dlq newest
        first; with ``group``, only that group's (a paused group's waiting jobs are
        ``PAUSED``). ``PENDING`` is always empty: a job is queued in the same atomic step
        that creates it."""
        self._check_open()
        wanted = _status(status)
        v.integer(limit, "limit", minimum=1, maximum=1_000_000)
        if group is not None:
            v.group(group)
        if wanted is JobStatus.PENDING:
            return []
        paused, jobs = await self._admin.get_jobs(wanted.value, limit, group)
        return [JobInfo.from_redis(job_id, f, logs, paused) for job_id, f, logs in jobs]

    @overload
    async def get_stats(self) -> QueueStats: ...

    @overload
    async def get_stats(self, *, group: str) -> GroupStats: ...

    async def get_stats(self, *, group: str | None = None) -> QueueStats | GroupStats:
        """Job counts of the queue (a group's waiting jobs count as waiting), or with
        ``group`` that group's state."""
        if group is not None:
            return await self.get_group_stats(group)
        self._check_open()
        (
            waiting,
            active,
            completed,
            failed,
            delayed,
            dlq,
            paused,
            latency,
            waiting_children,
        ) = await self._admin.get_stats()
        return QueueStats(
            active=active,
            waiting=0 if paused else waiting,
            completed=completed,
            failed=failed,
            delayed=delayed,
            paused=waiting if paused else 0,
            dlq=dlq,
            latency_ms=latency,
            waiting_children=waiting_children,
        )

    async def get_workers(self) -> list[WorkerInfo]:
        """The queue's live workers (every process's), as their heartbeats describe them;
        a worker that died drops out once its heartbeat lapses (see jobqueue.workers)."""
        from .workers import read_workers

        self._check_open()
        return await read_workers(self._native, self.name)

    async def health_check(self) -> HealthReport:
        """Never raises for an unhealthy Redis: the report carries the error. A Redis
        setting that can lose jobs makes the report unhealthy (see
        `jobqueue.redis_safety`); softer findings are its ``warnings``."""
        self._check_open()
        try:
            rtt_ms, version, workers, evalsha_reason = await self._admin.health()
            findings = await read_findings(self._native, self.config.settings.on_unsafe_redis)
        except JobQueueError as exc:
            return HealthReport(healthy=False, error=str(exc))
        unsafe = [str(f) for f in findings if f.severity is Severity.UNSAFE]
        warnings = [str(f) for f in findings if f.severity is Severity.WARNING]
        if evalsha_reason and evalsha_reason.startswith("FUNCTION LOAD failed"):
            # Correct but dearer per call (docs/redis-layout.md): worth knowing, not fatal.
            warnings.append(f"scripts run by EVALSHA: {evalsha_reason}")
        return HealthReport(
            healthy=not unsafe,
            redis_rtt_ms=rtt_ms,
            redis_version=version,
            workers=workers,
            error="; ".join(unsafe) or None,
            warnings=warnings,
            findings=findings,
            scripts="FCALL" if evalsha_reason is None else f"EVALSHA ({evalsha_reason})",
        )

    # -- managing -------------------------------------------------------------------------

    async def remove_job(self, job_id: str) -> None:
        """Remove a job that is not active. Raises ``JobNotFoundError`` for an unknown id
        and ``InvalidStateError`` for an active job. A flow's parent waiting for its
        children takes its pending children along, in every queue (those running finish,
        and their results are dropped)."""
        self._check_open()
        v.job_id(job_id)
        elsewhere = await self._admin.remove_job(job_id)
        if elsewhere:
            await self._flow_adder().remove_children(elsewhere)

    async def clear(self) -> int:
        """Remove every job, schedule and idempotency key of the queue; returns the number
        of jobs removed. Jobs still running on a worker are dropped when they finish."""
        self._check_open()
        return await self._admin.clear()

    async def pause(self) -> None:
        """Stop handing out jobs, for every worker of the queue."""
        self._check_open()
        await self._admin.set_paused(True)

    async def resume(self) -> None:
        self._check_open()
        await self._admin.set_paused(False)

    async def is_paused(self) -> bool:
        """Whether the queue is paused (its waiting jobs count as ``paused``)."""
        self._check_open()
        return (await self._native.get_stats())[6]

    async def drain(self, include_delayed: bool = False) -> int:
        """Remove waiting (and, if asked, delayed) jobs, and flow parents waiting for
        their children; active jobs finish. Returns the number removed."""
        self._check_open()
        v.boolean(include_delayed, "include_delayed")
        return await self._admin.drain(include_delayed)

    # -- scheduling -------------------------------------------------------------------------

    async def schedule_job(
        self,
        name: str,
        data: Any,
        cron: str,
        *,
        tz: str | None = None,
        schedule_id: str | None = None,
        misfire: str = "skip",
        max_catch_up: int = 100,
        **job_options: Any,
    ) -> str:
        """A recurring job on a cron pattern (5 fields, or 6 with seconds first), in time
        zone ``tz`` (default UTC). Returns the schedule id; the same name, data and pattern
        again keep one schedule. See `jobqueue.scheduler` for DST and misfires."""
        from .scheduler import check_cron, time_zone

        expression = check_cron(cron)
        zone = None if tz is None else tz
        time_zone(zone)  # validates
        return await self._schedule(
            name, data, job_options, schedule_id, misfire, max_catch_up,
            cron=expression, tz=zone, every=None, jitter=0,
        )  # fmt: skip

    async def schedule_every(
        self,
        name: str,
        data: Any,
        interval_ms: int | timedelta,
        *,
        jitter: int | timedelta = 0,
        schedule_id: str | None = None,
        misfire: str = "skip",
        max_catch_up: int = 100,
        **job_options: Any,
    ) -> str:
        """A recurring job every ``interval_ms``; each run comes a random 0..``jitter`` ms
        after the interval (so consecutive runs are interval..interval+jitter apart)."""
        every = v.duration_ms(interval_ms, "interval_ms", minimum=1)
        spread = v.duration_ms(jitter, "jitter")
        if spread >= every:
            raise InvalidOptionError(
                "jitter", f"must be less than interval_ms ({every}), got {spread}"
            )
        return await self._schedule(
            name, data, job_options, schedule_id, misfire, max_catch_up,
            cron=None, tz=None, every=every, jitter=spread,
        )  # fmt: skip

    async def _schedule(
        self,
        name: str,
        data: Any,
        job_options: dict[str, Any],
        schedule_id: str | None,
        misfire: str,
        max_catch_up: int,
        *,
        cron: str | None,
        tz: str | None,
        every: int | None,
        jitter: int,
    ) -> str:
        from .scheduler import ScheduleDefinition, check_misfire, data_json

        self._check_open()
        v.job_name(name)
        check_misfire(misfire, max_catch_up)
        if schedule_id is not None:
            v.job_id(schedule_id, "schedule_id")
        if "group" in job_options:
            raise InvalidOptionError("group", "is not supported for scheduled jobs yet")
        if "partition_key" in job_options:  # a schedule's jobs run in partition 0
            raise InvalidOptionError("partition_key", "is not supported for scheduled jobs")
        for per_job in ("job_id", "idempotency_key", "jitter"):
            if per_job in job_options:
                raise InvalidOptionError(per_job, "is set per tick by the schedule")
        try:
            options = JobOptions(**job_options)
        except TypeError as exc:
            raise InvalidOptionError("job_options", str(exc)) from None
        resolved = self._resolve(options)
        definition = ScheduleDefinition(
            name=name,
            data=data_json(name, data),
            opts=resolved.opts_json,
            priority=resolved.priority,
            delay=resolved.delay,
            max_attempts=resolved.attempts,
            cron=cron,
            tz=tz,
            every=every,
            jitter=jitter,
            misfire=misfire,
            max_catch_up=max_catch_up,
        )
        sid = schedule_id or definition.default_id()
        now = await self._native.server_time()
        await self._native.upsert_schedule(
            sid, definition.to_json(), definition.signature, definition.first_run(now)
        )
        await self._index()
        if self._scheduler is not None:
            self._scheduler.schedules_changed()
        return sid

    async def unschedule(self, schedule_id: str) -> bool:
        """Remove a schedule; returns False if there was none. Jobs it already enqueued
        stay."""
        self._check_open()
        v.job_id(schedule_id, "schedule_id")
        return await self._native.unschedule(schedule_id)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule of the queue, soonest next run first."""
        from .scheduler import ScheduleDefinition

        self._check_open()
        rows = await self._native.list_schedules()
        infos = [
            ScheduleDefinition.from_json(raw).info(sid, next_run, last_run)
            for sid, raw, next_run, last_run in rows
        ]
        return sorted(infos, key=lambda i: (i.next_run_at is None, i.next_run_at or 0, i.id))

    # -- recovery -----------------------------------------------------------------------------

    async def retry_job(self, job_id: str) -> None:
        """Move a failed or dead-lettered job back to waiting, its attempts reset."""
        self._check_open()
        v.job_id(job_id)
        await self._admin.retry_jobs("job", job_id)

    async def bulk_retry(self, status: JobStatus | str, limit: int | None = None) -> int:
        """Retry up to ``limit`` (default: all) jobs of ``status`` (failed or dlq), oldest
        first; returns how many."""
        self._check_open()
        wanted = _status(status)
        if wanted not in (JobStatus.FAILED, JobStatus.DLQ):
            raise InvalidOptionError("status", f"must be failed or dlq, got {wanted.value!r}")
        count = -1 if limit is None else v.integer(limit, "limit", minimum=0, maximum=10**9)
        return len(await self._admin.retry_jobs(wanted.value, str(count)))

    async def get_dlq_jobs(self, limit: int = 100) -> list[JobInfo]:
        """Dead-lettered jobs, newest first."""
        return await self.get_jobs_by_status(JobStatus.DLQ, limit)

    async def replay_dlq(self, limit: int | None = None) -> int:
        """Move up to ``limit`` (default: all) DLQ jobs back to waiting; returns how many."""
        return await self.bulk_retry(JobStatus.DLQ, limit)

    async def wait_for(self, job_id: str, timeout: int | timedelta | None = None) -> JobInfo:
        """Wait until the job completed or finally failed (or was dead-lettered); returns
        its final snapshot. Raises ``TimeoutError`` after ``timeout`` ms and
        ``JobNotFoundError`` when the job does not exist."""
        self._check_open()
        v.job_id(job_id)
        limit = None if timeout is None else v.duration_ms(timeout, "timeout")
        try:
            return await asyncio.wait_for(
                self._wait_final(job_id), None if limit is None else limit / 1000
            )
        except asyncio.TimeoutError:  # distinct from the builtin before Python 3.11
            raise TimeoutError(f"job {job_id} did not finish within {limit} ms") from None

    async def _wait_final(self, job_id: str) -> JobInfo:
        # Outcomes recorded by this process's worker wake the waiter at once; jobs run
        # elsewhere are seen by polling, slowly backing off.
        pause = 0.01
        while True:
            info = await self.get_job_status(job_id)
            if info is None:
                raise JobNotFoundError(f"job {job_id} does not exist")
            if info.status in _FINAL_STATUSES:
                return info
            waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(job_id, []).append(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), pause)
            except asyncio.TimeoutError:
                pass
            finally:
                waiters = self._waiters.get(job_id, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(job_id, None)
            pause = min(pause * 2, 0.5)

    def _resolve_waiters(self, job_id: str, outcome: str) -> None:
        for waiter in self._waiters.pop(job_id, ()):
            if not waiter.done():
                waiter.set_result(outcome)

    async def close(self, timeout: int | timedelta | None = None) -> None:
        """Stop taking jobs, let running jobs finish (up to ``timeout``; default: as long
        as they take), write their results and release the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        ms = None if timeout is None else v.duration_ms(timeout, "timeout")
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._worker is not None:
            await self._worker.close(ms)
        if self._fleet is not None:
            await self._fleet.stop()
        idle = asyncio.gather(self._events.wait_idle(), self._fleet_events.wait_idle())
        try:
            await asyncio.wait_for(idle, None if ms is None else ms / 1000)
        except asyncio.TimeoutError:
            pass
        self._producer.close()
        if self._partitions is not None:
            self._partitions.close()
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosedError(f"queue {self.name!r} is closed")


_FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.DLQ)


def _message(exc: InvalidOptionError) -> str:
    return str(exc)[len(exc.field) + 1 :]


def job_options(
    opts: JobOptions | Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> JobOptions:
    """``opts`` with the keyword options of ``add_job`` that were given over it."""
    options = JobOptions.coerce(opts)
    given = {k: val for k, val in overrides.items() if val is not None}
    if given:
        options = JobOptions(**given).merged_over(options)
    return options


def _added_job(job_id: str, row: tuple[Any, ...], created_at: int, status: str) -> JobInfo:
    _, name, data, opts_json, priority, delay, attempts, _, group, _ = row
    return JobInfo(
        id=job_id,
        name=name,
        status=JobStatus(status),
        data=data,
        max_attempts=attempts,
        created_at=created_at,
        delay=delay,
        priority=priority,
        opts=job_options_shown(orjson.loads(opts_json), delay, priority),
        group=group,
    )
