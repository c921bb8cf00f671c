"""jobqueue: a fast, reliable background-job queue for Python on Redis, with a Rust core.

>>> from jobqueue import JobQueue
"""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .flows import Flow, FlowIds, FlowTree, chain, group
    from .job import Job
    from .workers import WorkerInfo

#: Names whose modules `import jobqueue` leaves for their first use (PEP 562): flows, the
#: job a processor gets and a worker's description are not needed to make a queue and
#: add jobs, and a producer (a web app's process) never loads them.
_LAZY = {
    "Flow": "flows",
    "FlowIds": "flows",
    "FlowTree": "flows",
    "chain": "flows",
    "group": "flows",
    "Job": "job",
    "WorkerInfo": "workers",
}

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


def _lazy(name: str) -> object:
    """``jobqueue.<name>`` for a name of `_LAZY`: its module imported, the name then kept in
    this module's namespace (so this runs once per name)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value: object = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# Not seen by type checkers: they take the lazy names from the imports above, and a module
# `__getattr__` would make them accept any other name too.
if not TYPE_CHECKING:
    __getattr__ = _lazy

# Stop the native runtime before the interpreter finalizes, so that none of its threads is
# inside a Python call when finalization begins.
atexit.register(_shutdown_runtime)
