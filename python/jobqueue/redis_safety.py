"""Redis settings that silently lose jobs: found, reported, and refused when asked.

Under a ``maxmemory-policy`` other than ``noeviction`` a Redis that runs short of memory
deletes keys, jobs among them, and tells no one. So the native core reads the policy once
per new connection of a queue, before that connection serves (``src/redis_settings.rs``;
requests pay nothing for it), and calls `RedisSafety.on_connect()`, which reports an
evicting policy as a warning (the ``jobqueue`` logger and ``QUEUE_ERROR`` handlers) or,
with ``QueueSettings(on_unsafe_redis="refuse")``, refuses the server. Where ``CONFIG GET``
is not allowed the policy is read from ``INFO memory``; when neither answers, that is
reported too. `read_findings()` judges a full reading for ``health_check()`` and
``jobqueue doctor``: also no persistence at all, and memory nearly full.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._native import redis_settings
from .errors import JobQueueError, RedisOutOfMemoryError, UnsafeRedisError
from .models import RedisFinding, Severity

if TYPE_CHECKING:  # types of the stubs only
    from ._native import NativeQueue, RedisSettingsReading

logger = logging.getLogger("jobqueue")

__all__ = ["RedisSafety", "jobs_not_added", "policy_finding", "read_findings"]

SAFE_POLICY = "noeviction"
#: Used memory above this share of ``maxmemory`` is reported.
MEMORY_WARNING_SHARE = 0.9

_POLICY_FIX = (
    "set maxmemory-policy to noeviction (CONFIG SET maxmemory-policy noeviction, and in "
    "redis.conf or your provider's settings); a full Redis then refuses new jobs with "
    "RedisOutOfMemoryError instead of deleting stored ones"
)


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024 / 1024:.1f} MB"


def policy_finding(policy: str | None, source: str, problem: str) -> RedisFinding | None:
    """The finding about ``maxmemory-policy`` (None when it is ``noeviction``). ``source``
    says where it was read; ``problem`` why ``CONFIG GET`` (and ``INFO``) did not tell."""
    if policy is None:
        return RedisFinding(
            "maxmemory-policy",
            "unknown",
            Severity.WARNING,
            f"neither CONFIG GET nor INFO told it ({problem}), so jobqueue cannot check "
            "that Redis never evicts (deletes) jobs",
            "make sure maxmemory-policy is noeviction (ask your provider when CONFIG and "
            "INFO are disabled)",
        )
    if policy == SAFE_POLICY:
        return None
    where = "" if source == "CONFIG GET" else f" (read from {source}: {problem})"
    return RedisFinding(
        "maxmemory-policy",
        policy,
        Severity.UNSAFE,
        f"when memory runs short Redis deletes keys, jobs among them, without an error{where}",
        _POLICY_FIX,
    )


def _findings(reading: RedisSettingsReading) -> list[RedisFinding]:
    policy, source, problem, maxmemory, used, save, appendonly = reading
    found = [f for f in (policy_finding(policy, source, problem),) if f is not None]
    if maxmemory and used is not None and used > MEMORY_WARNING_SHARE * maxmemory:
        found.append(
            RedisFinding(
                "maxmemory",
                _size(maxmemory),
                Severity.WARNING,
                f"Redis uses {used / maxmemory:.0%} of it ({_size(used)}); when it is "
                "full, Redis refuses new jobs (or, when it evicts, deletes them)",
                "raise maxmemory, or keep fewer finished jobs (remove_on_complete / "
                "remove_on_fail)",
            )
        )
    if save == "" and appendonly == "no":
        found.append(
            RedisFinding(
                "save, appendonly",
                '"" and no',
                Severity.WARNING,
                "Redis does not persist at all: a restart or crash loses every job",
                "turn on the AOF (CONFIG SET appendonly yes, appendfsync everysec, and in "
                "redis.conf); see docs/guarantees.md",
            )
        )
    return found


async def read_findings(native: NativeQueue, action: str) -> list[RedisFinding]:
    """What the queue's Redis settings can cost, read now. With ``on_unsafe_redis``
    ``"ignore"`` an unsafe finding is reported as a warning only."""
    found = _findings(await redis_settings(native))
    if action == "ignore":
        return [
            RedisFinding(f.setting, f.value, Severity.WARNING, f.problem, f.fix)
            if f.severity is Severity.UNSAFE
            else f
            for f in found
        ]
    return found


async def jobs_not_added(native: NativeQueue, count: int) -> RedisOutOfMemoryError:
    """The error for an add that Redis refused for want of memory, with what the server
    says of its memory (when it still answers)."""
    try:
        policy, _, _, maxmemory, used, _, _ = await redis_settings(native)
        memory = f"maxmemory {_size(maxmemory)}, used {_size(used)}, maxmemory-policy {policy}"
    except JobQueueError:
        memory = "used memory over maxmemory"
    jobs = "the job was" if count == 1 else f"the {count} jobs were"
    return RedisOutOfMemoryError(
        f"Redis is out of memory ({memory}): {jobs} not added. Free memory (remove "
        "finished jobs, keep fewer: remove_on_complete / remove_on_fail) or raise maxmemory"
    )


class RedisSafety:
    """The hook that a queue's native connection calls on each new connection."""

    def __init__(self, action: str, report: Callable[[BaseException], None]) -> None:
        self._refuse = action == "refuse"
        # Weak: the native core holds this hook, and a strong reference back to the queue
        # would make a cycle through Rust that the garbage collector cannot see.
        self._report = weakref.WeakMethod(report)
        self._loop: asyncio.AbstractEventLoop | None = None

    def on_connect(
        self,
        policy: str | None,
        source: str,
        problem: str,
        loop: asyncio.AbstractEventLoop | None,
    ) -> str | None:
        """Judge a new connection's ``maxmemory-policy``; returns why the connection is
        refused, or None. Runs on the native runtime's thread; ``loop`` is the event loop
        of the call that connected (None for the worker's own requests)."""
        finding = policy_finding(policy, source, problem)
        if finding is None:
            return None
        if self._refuse and finding.severity is Severity.UNSAFE:
            return f"refusing this Redis (settings.on_unsafe_redis is 'refuse'): {finding}"
        error = UnsafeRedisError(str(finding))
        # Handlers run on the queue's event loop: the connecting call's, else the last one
        # seen (a worker reconnecting on its own has none).
        self._loop = loop or self._loop
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._deliver, error)
                return None
            except RuntimeError:  # that loop is closed
                pass
        logger.warning("jobqueue: %s", error)
        return None

    def _deliver(self, error: UnsafeRedisError) -> None:
        report = self._report()
        if report is None:  # the queue is gone
            logger.warning("jobqueue: %s", error)
        else:
            report(error)
