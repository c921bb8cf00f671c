"""Completed and failed jobs per minute over the last hour, counted from the queues' fleet
event streams (every worker's events, as `EventHub` reads them).

When the dashboard first shows a queue it counts the events of the last hour still in
the stream (it is capped at about 2,000 entries: a busy queue's stream holds less than an
hour), then every new one. ``failed`` counts final failures (``JOB_FAILED``,
dead-lettered ones included), not attempts that are retried. Minutes are those of each
event's own time (the Redis clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..events import QueueEvent
from .live import Entry

MINUTE_MS = 60_000
#: Minutes the chart shows.
WINDOW_MINUTES = 60


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Minute:
    at: int  # the minute's start (ms)
    completed: int
    failed: int


@dataclass(frozen=True)
class Snapshot:
    """``minutes``: the last hour, oldest first; ``last_minute``: the past 60 s."""

    since: int
    now: int
    minutes: list[Minute]
    completed_last_minute: int
    failed_last_minute: int

    @property
    def completed(self) -> int:
        return sum(m.completed for m in self.minutes)

    @property
    def failed(self) -> int:
        return sum(m.failed for m in self.minutes)

    def as_json(self) -> dict[str, object]:
        return {
            "since": self.since,
            "now": self.now,
            "last_minute": {
                "completed": self.completed_last_minute,
                "failed": self.failed_last_minute,
            },
            "minutes": [
                {"at": m.at, "completed": m.completed, "failed": m.failed} for m in self.minutes
            ],
        }


class Throughput:
    """The counts of every queue the hub follows; `count()` is a hub listener."""

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self.clock = clock
        self.since = clock()
        # queue -> minute -> [completed, failed]; queue -> [(ms, completed?)] of 60 s
        self._minutes: dict[str, dict[int, list[int]]] = {}
        self._recent: dict[str, list[tuple[int, bool]]] = {}

    def count(self, entry: Entry) -> None:
        for event in entry.events:
            if event.event is QueueEvent.JOB_COMPLETED:
                self._add(entry.queue, event.timestamp, True)
            elif event.event is QueueEvent.JOB_FAILED:
                self._add(entry.queue, event.timestamp, False)

    def _add(self, queue: str, at: int, completed: bool) -> None:
        minutes = self._minutes.setdefault(queue, {})
        minutes.setdefault(at // MINUTE_MS, [0, 0])[0 if completed else 1] += 1
        self._recent.setdefault(queue, []).append((at, completed))
        self._forget(queue, self.clock())

    def _forget(self, queue: str, now: int) -> None:
        recent = self._recent.get(queue, [])
        if recent and recent[0][0] <= now - MINUTE_MS:
            self._recent[queue] = [r for r in recent if r[0] > now - MINUTE_MS]
        minutes = self._minutes.get(queue, {})
        oldest = now // MINUTE_MS - WINDOW_MINUTES
        for minute in [m for m in minutes if m <= oldest]:
            del minutes[minute]

    def snapshot(self, queue: str) -> Snapshot:
        now = self.clock()
        self._forget(queue, now)
        current = now // MINUTE_MS
        counts = self._minutes.get(queue, {})
        rows = []
        for minute in range(current - WINDOW_MINUTES + 1, current + 1):
            completed, failed = counts.get(minute, (0, 0))
            rows.append(Minute(minute * MINUTE_MS, completed, failed))
        recent = self._recent.get(queue, [])
        done = sum(1 for _, completed in recent if completed)
        return Snapshot(self.since, now, rows, done, len(recent) - done)
