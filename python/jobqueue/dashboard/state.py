"""What the dashboard's pages and API share: its queues, the event hub and the counts it
feeds, the templates, and the settings of the app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..models import HealthReport
from ..queue import JobQueue
from .live import EventHub
from .queues import QueueSet
from .templates import Asset
from .throughput import Throughput

#: The chart covers the last hour: that much of a stream is counted when a queue is first
#: shown.
BACKFILL_MS = 3_600_000
#: A health report serves this long (s): it reads the server's settings.
HEALTH_TTL_S = 10.0


@dataclass
class Dashboard:
    queues: QueueSet
    csrf_token: str
    read_only: bool
    refresh_ms: int
    assets: dict[str, Asset]
    hub: EventHub = field(default_factory=EventHub)
    throughput: Throughput = field(default_factory=Throughput)
    _health: dict[str, tuple[float, HealthReport]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hub.listeners.append(self.throughput.count)

    async def watch(self, queue: JobQueue) -> None:
        """Count the queue's events (its last hour first) and follow them live."""
        await self.hub.follow(queue, backfill_ms=BACKFILL_MS)

    async def health(self, queue: JobQueue) -> HealthReport:
        cached = self._health.get(queue.name)
        if cached is not None and time.monotonic() - cached[0] < HEALTH_TTL_S:
            return cached[1]
        report = await queue.health_check()
        self._health[queue.name] = (time.monotonic(), report)
        return report

    def forget_health(self, queue: JobQueue) -> None:
        self._health.pop(queue.name, None)

    async def close(self) -> None:
        await self.hub.close()
        await self.queues.close()
