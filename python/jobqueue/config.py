"""Configuration objects of a `JobQueue`, validated when constructed.

Every duration takes integer milliseconds or a ``timedelta`` and is stored as ms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Literal

from . import _validate as v
from .errors import InvalidOptionError

BackoffType = Literal["exponential", "fixed"]
BACKOFF_TYPES: tuple[str, ...] = ("exponential", "fixed")
#: What a queue does on a Redis whose settings can lose jobs (see ``jobqueue.redis_safety``).
UnsafeRedisAction = Literal["warn", "refuse", "ignore"]
UNSAFE_REDIS_ACTIONS: tuple[str, ...] = ("warn", "refuse", "ignore")

#: Highest priority number (the least urgent). Priorities share a double-precision score
#: with a FIFO counter in Redis, which keeps them exact up to 2**21 - 1.
MAX_PRIORITY = 2**21 - 1


def _set(obj: object, name: str, value: object) -> None:
    """Store a normalised value on a frozen dataclass during ``__post_init__``."""
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Backoff:
    """Delay before a retry: ``exponential`` (``delay * 2**(attempt-1)``, capped at
    ``max_delay``) or ``fixed``. ``jitter`` (0..1) randomises up to that fraction of the
    computed delay away."""

    type: BackoffType
    delay: int
    max_delay: int | None = None
    jitter: float = 0.0

    def __post_init__(self) -> None:
        v.one_of(self.type, BACKOFF_TYPES, "backoff.type")
        _set(self, "delay", v.duration_ms(self.delay, "backoff.delay"))
        if self.max_delay is not None:
            max_delay = v.duration_ms(self.max_delay, "backoff.max_delay")
            if max_delay < self.delay:
                raise InvalidOptionError(
                    "backoff.max_delay", f"must be >= backoff.delay ({self.delay}), got {max_delay}"
                )
            _set(self, "max_delay", max_delay)
        _set(self, "jitter", v.fraction(self.jitter, "backoff.jitter"))

    @classmethod
    def exponential(
        cls, delay: v.Duration, max_delay: v.Duration | None = None, *, jitter: float = 0.0
    ) -> Backoff:
        return cls("exponential", delay, max_delay, jitter)  # type: ignore[arg-type]

    @classmethod
    def fixed(cls, delay: v.Duration, *, jitter: float = 0.0) -> Backoff:
        return cls("fixed", delay, None, jitter)  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, value: object) -> Backoff:
        """A Backoff from itself, a number (fixed delay, as BullMQ) or a dict such as
        ``{"type": "exponential", "delay": 1000, "max_delay": 30000}``."""
        if isinstance(value, Backoff):
            return value
        if isinstance(value, (int, timedelta)) and not isinstance(value, bool):
            return cls.fixed(value)
        if isinstance(value, Mapping):
            known = {"type", "delay", "max_delay", "maxDelay", "jitter"}
            unknown = set(value) - known
            if unknown:
                raise InvalidOptionError("backoff", f"has unknown keys {sorted(map(str, unknown))}")
            if "type" not in value or "delay" not in value:
                raise InvalidOptionError("backoff", "needs at least 'type' and 'delay'")
            return cls(
                value["type"],
                value["delay"],
                value.get("max_delay", value.get("maxDelay")),
                value.get("jitter", 0.0),
            )
        raise InvalidOptionError(
            "backoff", f"must be a Backoff, a dict or a number of ms, got {v.type_name(value)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "delay": self.delay,
            "max_delay": self.max_delay,
            "jitter": self.jitter,
        }


@dataclass(frozen=True)
class Retention:
    """How many finished jobs to keep: the newest ``count`` and/or those younger than
    ``age`` ms. ``Retention()`` keeps everything; ``Retention(count=0)`` keeps nothing."""

    count: int | None = None
    age: int | None = None

    def __post_init__(self) -> None:
        if self.count is not None:
            _set(self, "count", v.integer(self.count, "retention.count", minimum=0, maximum=10**9))
        if self.age is not None:
            _set(self, "age", v.duration_ms(self.age, "retention.age"))

    @classmethod
    def coerce(cls, value: object, name: str) -> Retention:
        """``True`` removes at once, ``False`` keeps all, an int keeps the newest N, a
        timedelta keeps jobs younger than it, ``{"count": n, "age": ms}`` does both."""
        if isinstance(value, Retention):
            return value
        if value is True:
            return cls(count=0)
        if value is False:
            return cls()
        if isinstance(value, int):
            return cls(count=v.integer(value, name, minimum=0, maximum=10**9))
        if isinstance(value, timedelta):
            return cls(age=v.duration_ms(value, name))
        if isinstance(value, Mapping):
            unknown = set(value) - {"count", "age"}
            if unknown:
                raise InvalidOptionError(name, f"has unknown keys {sorted(map(str, unknown))}")
            return cls(count=value.get("count"), age=value.get("age"))
        raise InvalidOptionError(
            name,
            f"must be a bool, a count, a timedelta or {{'count', 'age'}}, got {v.type_name(value)}",
        )

    def to_dict(self) -> dict[str, int | None]:
        return {"count": self.count, "age": self.age}


#: Finished jobs kept by default: the newest 10,000 of each kind, so memory stays bounded.
DEFAULT_RETENTION = Retention(count=10_000)


@dataclass(frozen=True)
class JobOptions:
    """Options of one job. ``None`` means: take the queue's default."""

    attempts: int | None = None
    delay: v.Duration | None = None
    priority: int | None = None
    backoff: Backoff | Mapping[str, Any] | int | None = None
    timeout: v.Duration | None = None
    idempotency_key: str | None = None
    jitter: v.Duration | None = None
    job_id: str | None = None
    remove_on_complete: bool | int | timedelta | Retention | Mapping[str, Any] | None = None
    remove_on_fail: bool | int | timedelta | Retention | Mapping[str, Any] | None = None
    #: The job's group: its jobs run within the group's limits, and groups take turns
    #: (see ``JobQueue.set_group_limit``).
    group: str | None = None
    #: On a partitioned queue (``JobQueue(partitions=N)``): jobs of the same key go to the
    #: same partition (by hash), so they keep their order among themselves. Ignored on an
    #: unpartitioned queue.
    partition_key: str | None = None

    def __post_init__(self) -> None:
        if self.partition_key is not None:
            v.text(self.partition_key, "partition_key")
        if self.group is not None:
            v.group(self.group)
        if self.attempts is not None:
            v.integer(self.attempts, "attempts", minimum=1, maximum=v.MAX_ATTEMPTS)
        if self.delay is not None:
            _set(self, "delay", v.duration_ms(self.delay, "delay"))
        if self.priority is not None:
            v.integer(self.priority, "priority", minimum=0, maximum=MAX_PRIORITY)
        if self.backoff is not None:
            _set(self, "backoff", Backoff.coerce(self.backoff))
        if self.timeout is not None:
            _set(self, "timeout", v.duration_ms(self.timeout, "timeout", minimum=1))
        if self.idempotency_key is not None:
            v.text(self.idempotency_key, "idempotency_key")
        if self.jitter is not None:
            _set(self, "jitter", v.duration_ms(self.jitter, "jitter"))
        if self.job_id is not None:
            v.job_id(self.job_id)
            if self.job_id.isdigit():
                # Plain numbers are the queue's own ids; a custom one could collide.
                raise InvalidOptionError(
                    "job_id",
                    f"must not be only digits (those are generated ids), got {self.job_id!r}",
                )
        for name in ("remove_on_complete", "remove_on_fail"):
            value = getattr(self, name)
            if value is not None:
                _set(self, name, Retention.coerce(value, name))

    @classmethod
    def coerce(cls, value: object, name: str = "opts") -> JobOptions:
        if value is None:
            return NO_JOB_OPTIONS
        if isinstance(value, JobOptions):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise InvalidOptionError(name, f"has unknown options {sorted(map(str, unknown))}")
            return cls(**value)
        raise InvalidOptionError(name, f"must be a JobOptions or a dict, got {v.type_name(value)}")

    def merged_over(self, defaults: JobOptions) -> JobOptions:
        """These options, with each unset field taken from ``defaults``."""
        changes = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(defaults, **{k: val for k, val in changes.items() if val is not None})


#: Options left unset: shared, so that the many jobs added without options are cheap.
NO_JOB_OPTIONS = JobOptions()


@dataclass(frozen=True)
class RetryConfig:
    """Queue-wide retry defaults, used where a job's options and the queue's
    ``default_job_options`` leave ``attempts`` or ``backoff`` unset."""

    max_attempts: int = 3
    backoff_type: BackoffType = "exponential"
    backoff_delay: v.Duration = 1000
    max_backoff_delay: v.Duration | None = 30_000
    jitter: float = 0.0

    def __post_init__(self) -> None:
        v.integer(self.max_attempts, "retry.max_attempts", minimum=1, maximum=v.MAX_ATTEMPTS)
        v.one_of(self.backoff_type, BACKOFF_TYPES, "retry.backoff_type")
        _set(self, "backoff_delay", v.duration_ms(self.backoff_delay, "retry.backoff_delay"))
        if self.max_backoff_delay is not None:
            _set(
                self,
                "max_backoff_delay",
                v.duration_ms(self.max_backoff_delay, "retry.max_backoff_delay"),
            )
        self.backoff()  # validates the combination

    def backoff(self) -> Backoff:
        max_delay = self.max_backoff_delay if self.backoff_type == "exponential" else None
        return Backoff(
            self.backoff_type,
            v.stored_ms(self.backoff_delay),
            None if max_delay is None else v.stored_ms(max_delay),
            self.jitter,
        )


@dataclass(frozen=True)
class DLQConfig:
    """Dead-letter queue: where jobs go after their last failed attempt. The DLQ lives in
    the queue's own Redis keys (one cluster slot); ``queue_name`` labels it."""

    enabled: bool = True
    queue_name: str | None = None
    notification_handler: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        v.boolean(self.enabled, "dlq.enabled")
        if self.queue_name is not None:
            v.text(self.queue_name, "dlq.queue_name", max_length=200)
        v.callable_or_none(self.notification_handler, "dlq.notification_handler")


@dataclass(frozen=True)
class Durability:
    """Adds and acks return only once ``replicas`` replicas confirmed them (Redis ``WAIT``,
    sent with each write in the same round trip), waiting at most ``timeout`` ms. Short
    of that, an add raises `NotReplicatedError` (the jobs stay
    written on the primary) and a worker reports the ack to ``QUEUE_ERROR`` handlers."""

    replicas: int = 1
    timeout: v.Duration = 100

    def __post_init__(self) -> None:
        v.integer(self.replicas, "settings.durability.replicas", minimum=1, maximum=1000)
        # WAIT's timeout 0 means "forever": a positive bound keeps every call bounded.
        _set(
            self,
            "timeout",
            v.duration_ms(self.timeout, "settings.durability.timeout", minimum=1),
        )


@dataclass(frozen=True)
class QueueSettings:
    """Locks, stalled-job detection and limits, and what to do on an unsafe Redis.

    ``on_unsafe_redis``: on a Redis whose ``maxmemory-policy`` evicts keys (and so can
    drop jobs), ``"warn"`` (default) logs a warning and reports it to ``QUEUE_ERROR``
    handlers once per connection, ``"refuse"`` raises ``UnsafeRedisError`` from every call
    and writes nothing, ``"ignore"`` does not check at all."""

    max_stalled_count: int = 1
    max_stalled_interval: v.Duration = 5000
    lock_duration: v.Duration = 30_000
    lock_renew_time: v.Duration | None = None
    max_payload_bytes: int = 10 * 1024 * 1024
    idempotency_ttl: v.Duration = timedelta(hours=24)
    on_unsafe_redis: UnsafeRedisAction = "warn"
    #: None (default): writes return once the primary has them, nothing more is sent.
    durability: Durability | None = None

    def __post_init__(self) -> None:
        v.integer(
            self.max_stalled_count, "settings.max_stalled_count", minimum=0, maximum=1_000_000
        )
        _set(
            self,
            "max_stalled_interval",
            v.duration_ms(self.max_stalled_interval, "settings.max_stalled_interval", minimum=1),
        )
        lock = v.duration_ms(self.lock_duration, "settings.lock_duration", minimum=1)
        _set(self, "lock_duration", lock)
        # Renewing at half the lock's life leaves a whole half for a slow round trip.
        renew = lock // 2 if self.lock_renew_time is None else self.lock_renew_time
        renew = v.duration_ms(renew, "settings.lock_renew_time", minimum=1)
        if renew >= lock:
            raise InvalidOptionError(
                "settings.lock_renew_time",
                f"must be < settings.lock_duration ({lock}), got {renew}",
            )
        _set(self, "lock_renew_time", renew)
        # Redis strings hold at most 512 MiB.
        v.integer(self.max_payload_bytes, "settings.max_payload_bytes", minimum=1, maximum=2**29)
        _set(
            self,
            "idempotency_ttl",
            v.duration_ms(self.idempotency_ttl, "settings.idempotency_ttl", minimum=1),
        )
        v.one_of(self.on_unsafe_redis, UNSAFE_REDIS_ACTIONS, "settings.on_unsafe_redis")
        if self.durability is not None and not isinstance(self.durability, Durability):
            raise InvalidOptionError(
                "settings.durability",
                f"must be a Durability or None, got {v.type_name(self.durability)}",
            )


@dataclass(frozen=True)
class RateLimit:
    """At most ``max`` jobs start per ``duration`` ms, across all workers of the queue."""

    max: int
    duration: v.Duration

    def __post_init__(self) -> None:
        _set(self, "duration", _rate_duration(self.max, self.duration, "limiter"))

    @classmethod
    def coerce(cls, value: object, name: str) -> RateLimit:
        """A RateLimit, ``(max, duration ms)`` or ``{"max": n, "duration": ms}``; errors
        name ``name``."""
        if isinstance(value, RateLimit):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            spec: Mapping[str, Any] = {"max": value[0], "duration": value[1]}
        elif isinstance(value, Mapping):
            if set(value) != {"max", "duration"}:
                raise InvalidOptionError(name, "must have the keys 'max' and 'duration'")
            spec = value
        else:
            raise InvalidOptionError(
                name,
                f"must be a RateLimit, (max, duration ms) or a dict, got {v.type_name(value)}",
            )
        return cls(spec["max"], _rate_duration(spec["max"], spec["duration"], name))


def _rate_duration(max_jobs: object, duration: object, name: str) -> int:
    """Check a rate's fields (errors name ``name.max`` / ``name.duration``); the duration
    in ms."""
    v.integer(max_jobs, f"{name}.max", minimum=1, maximum=10**9)
    return v.duration_ms(duration, f"{name}.duration", minimum=1)


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 10
    limiter: RateLimit | None = None
    scheduler: bool = True

    def __post_init__(self) -> None:
        v.integer(self.concurrency, "worker.concurrency", minimum=1, maximum=100_000)
        if self.limiter is not None:
            _set(self, "limiter", RateLimit.coerce(self.limiter, "worker.limiter"))
        v.boolean(self.scheduler, "worker.scheduler")


def _defaults_only(options: JobOptions) -> JobOptions:
    for name in ("job_id", "idempotency_key", "partition_key"):
        if getattr(options, name) is not None:
            raise InvalidOptionError(
                f"default_job_options.{name}", "is per job and cannot be a default"
            )
    return options


@dataclass(frozen=True)
class QueueConfig:
    """Everything a queue is configured with besides its connection, normalised."""

    default_job_options: JobOptions = field(default_factory=JobOptions)
    retry: RetryConfig = field(default_factory=RetryConfig)
    dlq: DLQConfig = field(default_factory=DLQConfig)
    settings: QueueSettings = field(default_factory=QueueSettings)
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    def __post_init__(self) -> None:
        _set(
            self,
            "default_job_options",
            _defaults_only(JobOptions.coerce(self.default_job_options, "default_job_options")),
        )
        for name, kind in (
            ("retry", RetryConfig),
            ("dlq", DLQConfig),
            ("settings", QueueSettings),
            ("worker", WorkerConfig),
        ):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                try:
                    _set(self, name, kind(**value))
                except TypeError as exc:
                    raise InvalidOptionError(name, str(exc)) from None
            elif not isinstance(value, kind):
                raise InvalidOptionError(
                    name, f"must be a {kind.__name__}, got {v.type_name(value)}"
                )
