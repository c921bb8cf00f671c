"""Completed and failed jobs per minute over the last hour, counted from the queue's fleet
event stream (every worker's events) from the first time the dashboard is asked for them.

The counts live in the dashboard's process: they start at zero when it starts (the stream
is capped, not a history of the hour). ``failed`` counts final failures (``JOB_FAILED``,
dead-lettered ones included), not attempts that are retried.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..events import QueueEvent
from ..queue import JobQueue

MINUTE_MS = 60_000
#: Minutes the chart shows.
WINDOW_MINUTES = 60

_COMPLETED, _FAILED = 0, 1


def now_ms() -> int:
    return int(time.time() * 1000)


class Throughput:
    """The counts of one queue; :meth:`start` before reading them (idempotent)."""

    def __init__(self, queue: JobQueue, clock: Callable[[], int] = now_ms) -> None:
        self.queue = queue
        self.clock = clock
        self.since: int | None = None
        self._minutes: dict[int, list[int]] = {}
        self._recent: deque[tuple[int, int]] = deque()  # (ms, kind) of the last minute

    async def start(self) -> None:
        if self.since is not None:
            return
        self.since = self.clock()
        self.queue.on(QueueEvent.JOB_COMPLETED, self._completed, fleet=True)
        self.queue.on(QueueEvent.JOB_FAILED, self._failed, fleet=True)
        await self.queue.follow_fleet_events()

    def _completed(self, event: Any) -> None:
        self._count(_COMPLETED)

    def _failed(self, event: Any) -> None:
        self._count(_FAILED)

    def _count(self, kind: int) -> None:
        at = self.clock()
        self._minutes.setdefault(at // MINUTE_MS, [0, 0])[kind] += 1
        self._recent.append((at, kind))
        self._forget(at)

    def _forget(self, at: int) -> None:
        while self._recent and self._recent[0][0] <= at - MINUTE_MS:
            self._recent.popleft()
        oldest = at // MINUTE_MS - WINDOW_MINUTES
        for minute in [m for m in self._minutes if m <= oldest]:
            del self._minutes[minute]

    def snapshot(self) -> dict[str, Any]:
        """``last_minute``: counts of the past 60 s; ``minutes``: one row per minute of the
        last hour, oldest first (``at``: the minute's start, ms)."""
        at = self.clock()
        self._forget(at)
        current = at // MINUTE_MS
        rows = []
        for minute in range(current - WINDOW_MINUTES + 1, current + 1):
            completed, failed = self._minutes.get(minute, (0, 0))
            rows.append({"at": minute * MINUTE_MS, "completed": completed, "failed": failed})
        recent = [kind for _, kind in self._recent]
        return {
            "since": self.since,
            "now": at,
            "last_minute": {
                "completed": recent.count(_COMPLETED),
                "failed": recent.count(_FAILED),
            },
            "minutes": rows,
        }
