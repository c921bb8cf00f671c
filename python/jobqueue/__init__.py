"""jobqueue: a fast, reliable background-job queue for Python on Redis, with a Rust core.

>>> from jobqueue import JobQueue
"""

from __future__ import annotations

import atexit

from ._native import __version__
from ._native import shutdown_runtime as _shutdown_runtime
from .config import (
    Backoff,
    DLQConfig,
    Durability,
    JobOptions,
    QueueSettings,
    RateLimit,
    Retention,
    RetryConfig,
    WorkerConfig,
)
from .errors import NotReplicatedError, RedisOutOfMemoryError, UnsafeRedisError
from .events import QueueEvent
from .fleet import JobEvent, QueueEvents
from .flows import Flow, FlowIds, FlowTree, chain, group
from .job import Job
from .models import (
    GroupStats,
    HealthReport,
    JobInfo,
    JobStatus,
    QueueStats,
    RedisFinding,
    ScheduleInfo,
    Severity,
)
from .operations import list_queues
from .queue import JobQueue
from .redis_config import RedisConfig, TlsOptions
from .workers import WorkerInfo

__all__ = [
    "Backoff",
    "DLQConfig",
    "Durability",
    "Flow",
    "FlowIds",
    "FlowTree",
    "GroupStats",
    "HealthReport",
    "Job",
    "JobEvent",
    "JobInfo",
    "JobOptions",
    "JobQueue",
    "JobStatus",
    "NotReplicatedError",
    "QueueEvent",
    "QueueEvents",
    "QueueSettings",
    "QueueStats",
    "RateLimit",
    "RedisConfig",
    "RedisFinding",
    "RedisOutOfMemoryError",
    "Retention",
    "RetryConfig",
    "ScheduleInfo",
    "Severity",
    "TlsOptions",
    "UnsafeRedisError",
    "WorkerConfig",
    "WorkerInfo",
    "__version__",
    "chain",
    "group",
    "list_queues",
]

# Stop the native runtime before the interpreter finalizes, so that none of its threads is
# inside a Python call when finalization begins.
atexit.register(_shutdown_runtime)
