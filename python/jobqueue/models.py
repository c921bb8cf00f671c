"""What the queue reports: job statuses, job snapshots, queue statistics, health."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from .config import RateLimit

#: The end of a partition's name, ``#<digits>`` (see jobqueue.partitions).
_PARTITION_SUFFIX = re.compile(r"#\d+\Z")


class ValueEnum(str, Enum):
    """A str enum that prints as its value (``str(JobStatus.WAITING) == "waiting"``)."""

    def __str__(self) -> str:
        return str(self.value)


class JobStatus(ValueEnum):
    PENDING = "pending"
    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DELAYED = "delayed"
    PAUSED = "paused"
    DLQ = "dlq"
    #: A flow's parent waiting for its children (see jobqueue.flows).
    WAITING_CHILDREN = "waiting_children"


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job. Timestamps are ms since the epoch, from Redis's clock."""

    id: str
    name: str
    status: JobStatus
    data: Any
    progress: Any = 0
    attempts: int = 0
    max_attempts: int = 1
    created_at: int = 0
    processed_at: int | None = None
    finished_at: int | None = None
    return_value: Any = None
    failed_reason: str | None = None
    stacktrace: str | None = None
    delay: int = 0
    priority: int = 0
    logs: list[str] = field(default_factory=list)
    opts: dict[str, Any] = field(default_factory=dict)
    schedule_id: str | None = None
    scheduled_for: int | None = None
    group: str | None = None
    #: A flow's child: its parent's id (``parent_queue`` names the parent's queue).
    parent_id: str | None = None
    parent_queue: str | None = None

    @classmethod
    def from_redis(
        cls, job_id: str, fields: dict[str, str], logs: list[str], paused: bool
    ) -> JobInfo:
        """Build from the job's fields as the scripts read them from its record and run
        state (see docs/redis-layout.md). A job damaged by hand still reads: a field that
        does not parse reads as its default (JSON fields as their raw text)."""
        state = fields.get("state", "waiting")
        try:
            status = JobStatus(state)
        except ValueError:
            status = JobStatus.WAITING
        if paused and status is JobStatus.WAITING:
            status = JobStatus.PAUSED
        delay = _int(fields.get("delay")) or 0
        priority = _int(fields.get("priority")) or 0
        opts = job_options_shown(_json_object(fields.get("opts")), delay, priority)
        parent = parse_parent(fields.get("parent"))
        return cls(
            id=job_id,
            name=fields.get("name", ""),
            status=status,
            data=_json(fields.get("data")),
            progress=_json(fields.get("progress"), default=0),
            attempts=_int(fields.get("attempts_made")) or 0,
            max_attempts=_int(fields.get("max_attempts")) or 1,
            created_at=_int(fields.get("created_at")) or 0,
            processed_at=_int(fields.get("processed_at")),
            finished_at=_int(fields.get("finished_at")),
            return_value=_json(fields.get("return_value")),
            failed_reason=fields.get("failed_reason"),
            stacktrace=fields.get("stacktrace"),
            delay=delay,
            priority=priority,
            logs=logs,
            opts=opts,
            schedule_id=fields.get("schedule_id"),
            scheduled_for=_int(fields.get("scheduled_for")),
            group=fields.get("group"),
            parent_queue=None if parent is None else queue_name(parent[1]),
            parent_id=None if parent is None else parent[2],
        )


def queue_of_base(base: str) -> str:
    """The queue name (a partition's: ``name#i``) of a key base ``prefix:{name}:``."""
    return base[base.find("{") + 1 : base.rfind("}")]


def queue_name(partition: str) -> str:
    """The queue a partition name (``name#i``, or the queue's own name) belongs to."""
    if "#" not in partition:
        return partition
    return _PARTITION_SUFFIX.sub("", partition)


def split_ref(ref: str) -> tuple[str, str]:
    """A job ref ``<key base> <id>`` (flows name jobs anywhere so) as (its queue or
    partition name, its id)."""
    base, _, job_id = ref.partition(" ")
    return queue_of_base(base), job_id


def parse_parent(ref: str | None) -> tuple[str, str, str] | None:
    """A flow child's parent as its record holds it (``<policy><key base> <id>``): the
    policy letter, the parent's queue (a partition's name) and id; None for none."""
    if not ref:
        return None
    slot, parent_id = split_ref(ref[1:])
    return ref[0], slot, parent_id


def _json(raw: str | None, default: Any = None) -> Any:
    if raw is None:
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def job_options_shown(stored: dict[str, Any], delay: int, priority: int) -> dict[str, Any]:
    """A job's options as ``JobInfo.opts`` shows them: the stored options text leaves out
    delay and priority (they are stored beside it, docs/redis-layout.md)."""
    return {**stored, "delay": delay, "priority": priority}


def _json_object(raw: str | None) -> dict[str, Any]:
    value = _json(raw, default={})
    return value if isinstance(value, dict) else {}


def _int(raw: str | None) -> int | None:
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class QueueStats:
    """Job counts by status; ``latency_ms`` is the age of the oldest waiting job."""

    active: int
    waiting: int
    completed: int
    failed: int
    delayed: int
    paused: int
    dlq: int
    latency_ms: int
    #: Flow parents waiting for their children (``JobStatus.WAITING_CHILDREN``).
    waiting_children: int = 0


class Severity(ValueEnum):
    #: The setting can lose jobs: the queue is not healthy.
    UNSAFE = "unsafe"
    #: Worth fixing, but no job is lost by it alone.
    WARNING = "warning"


@dataclass(frozen=True)
class RedisFinding:
    """A Redis setting that can cost jobs, what it does and how to fix it (see
    `jobqueue.redis_safety`). ``str()`` gives all of it as one sentence."""

    setting: str
    value: str
    severity: Severity
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.setting} is {self.value}: {self.problem}. Fix: {self.fix}"


@dataclass(frozen=True)
class GroupStats:
    """One group's state. ``concurrency`` and ``rate`` are the limits in force (its own,
    else the queue's default group limit; None: no limit); ``own_limits`` tells whether it
    has any of its own. ``rate_limited_until`` (ms, Redis clock) is set while its rate
    window is used up. ``waiting`` counts its waiting jobs, paused or not (not its delayed
    ones)."""

    group: str
    waiting: int
    active: int
    paused: bool
    concurrency: int | None
    rate: RateLimit | None
    own_limits: bool
    rate_limited_until: int | None = None


@dataclass(frozen=True)
class HealthReport:
    """Truthy when Redis answered and none of its settings can lose jobs. ``error`` says
    why not; ``warnings`` are softer findings (no persistence, memory nearly full);
    ``findings`` are all the Redis findings, structured. ``scripts`` says how the queue's
    scripts run: ``"FCALL"`` (its Redis Function library) or ``"EVALSHA (<why>)"``."""

    healthy: bool
    redis_rtt_ms: float | None = None
    redis_version: str | None = None
    workers: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    findings: list[RedisFinding] = field(default_factory=list)
    scripts: str | None = None

    def __bool__(self) -> bool:
        return self.healthy


@dataclass(frozen=True)
class ScheduleInfo:
    """A recurring schedule. ``next_run_at`` / ``last_run_at`` are the tick times (ms, Redis
    clock) of its next and latest run; ``last_run_at`` is None before the first."""

    id: str
    name: str
    data: Any
    cron: str | None
    every: int | None
    tz: str | None
    next_run_at: int | None
    last_run_at: int | None
    jitter: int = 0
    misfire: str = "skip"
