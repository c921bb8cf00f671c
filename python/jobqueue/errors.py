"""The exceptions of jobqueue. Every one derives from `JobQueueError`.

Where a builtin exception means the same thing, ours derives from it too, so that
``except ValueError`` or ``except ConnectionError`` (the builtin) keep working.
"""

from __future__ import annotations

import builtins

__all__ = [
    "ConnectionError",
    "InvalidCronError",
    "InvalidOptionError",
    "InvalidStateError",
    "JobNotFoundError",
    "JobQueueError",
    "LayoutVersionError",
    "NotReplicatedError",
    "PayloadTooLargeError",
    "QueueClosedError",
    "RedisError",
    "RedisOutOfMemoryError",
    "SerializationError",
    "UnsafeRedisError",
]


class JobQueueError(Exception):
    """Base class of every error raised by jobqueue."""


class ConnectionError(JobQueueError, builtins.ConnectionError):
    """Redis cannot be reached, or the connection broke during a request."""


class RedisError(JobQueueError):
    """Redis answered a request with an error."""


class RedisOutOfMemoryError(RedisError):
    """Redis is over ``maxmemory`` and evicts nothing, so it refused a write; the request
    wrote nothing."""


class NotReplicatedError(JobQueueError):
    """With ``QueueSettings(durability=...)``: a write (the jobs of an add) reached the
    primary but fewer replicas than asked confirmed it in time. It was not rolled back:
    the jobs exist and run, unless a failover happens before a replica has them."""


class UnsafeRedisError(JobQueueError):
    """The Redis server's settings can lose jobs (e.g. an evicting ``maxmemory-policy``).
    Raised when ``QueueSettings(on_unsafe_redis="refuse")``; otherwise the finding is
    reported to ``QUEUE_ERROR`` handlers and logged as a warning."""


class SerializationError(JobQueueError, TypeError):
    """A value is not plain JSON (dict, list, str, int, float, bool, None)."""


class InvalidOptionError(JobQueueError, ValueError):
    """An option or argument has a bad value; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


class InvalidCronError(InvalidOptionError):
    """A cron expression that cannot be parsed."""


class PayloadTooLargeError(JobQueueError, ValueError):
    """Job data larger than the queue's ``max_payload_bytes``."""


class JobNotFoundError(JobQueueError, LookupError):
    """No job with this id exists in the queue."""


class InvalidStateError(JobQueueError):
    """The job's state forbids the operation (e.g. removing an active job)."""


class LayoutVersionError(JobQueueError):
    """The queue's Redis keys were written by an incompatible jobqueue version."""


class QueueClosedError(JobQueueError):
    """The queue was closed; create a new ``JobQueue`` to use it again."""
