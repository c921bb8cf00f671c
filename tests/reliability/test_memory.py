"""Memory stays bounded: 200,000 jobs through the default retention level off both Redis's
``used_memory`` and the worker's RSS, and the events stream stays capped.
``JOBQUEUE_SOAK_JOBS`` runs more (``make soak``)."""

from __future__ import annotations

import os
import resource
from collections.abc import Awaitable, Callable

from jobqueue import JobQueue, WorkerConfig
from jobqueue.job import Job
from jobqueue.testing import RedisServer, redis_command

from ..helpers import eventually

JOBS = int(os.environ.get("JOBQUEUE_SOAK_JOBS", "200000"))
BATCH = 1000
BACKLOG = 5000  # the producer keeps at most this many jobs waiting


def redis_used_memory(port: int) -> int:
    info = redis_command(port, "INFO", "memory")
    assert isinstance(info, bytes)
    line = next(x for x in info.decode().splitlines() if x.startswith("used_memory:"))
    return int(line.split(":")[1])


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def test_memory_levels_off_under_the_default_retention() -> None:
    with RedisServer() as server:
        queue = JobQueue("memory", redis=server.url, worker=WorkerConfig(concurrency=50))

        @queue.processor("noop")
        async def noop(job: Job[dict[str, object]]) -> None:
            return None

        await queue.start_worker()
        samples: list[tuple[int, int, int]] = []
        added = 0
        while added < JOBS:
            stats = await queue.get_stats()
            if stats.waiting > BACKLOG:
                await eventually(_below(queue, BACKLOG), interval=0.005)
            await queue.add_jobs(
                [("noop", {"i": i, "s": "x" * 100}) for i in range(added, added + BATCH)]
            )
            added += BATCH
            if added % (JOBS // 8) == 0:
                samples.append((added, redis_used_memory(server.port), rss_bytes()))

        async def drained() -> bool:
            stats = await queue.get_stats()
            return stats.waiting == 0 and stats.active == 0

        await eventually(drained, timeout=120, interval=0.05)
        end = (JOBS, redis_used_memory(server.port), rss_bytes())
        stats = await queue.get_stats()
        events_key = "jq:{memory}:events"
        events_length = redis_command(server.port, "XLEN", events_key)
        events_bytes = redis_command(server.port, "MEMORY", "USAGE", events_key)
        await queue.close(timeout=10_000)

    half = samples[len(samples) // 2 - 1]
    print(
        f"\nafter {half[0]:,} jobs: redis {half[1] / 2**20:.1f} MiB, rss {half[2] / 2**20:.1f} MiB;"
        f" after {end[0]:,}: redis {end[1] / 2**20:.1f} MiB, rss {end[2] / 2**20:.1f} MiB;"
        f" events stream: {events_length} entries, {events_bytes} bytes"
    )
    # Capped at about 2,000 entries (trimmed in whole nodes) of at most ~9 KB each.
    assert isinstance(events_length, int) and 1000 <= events_length <= 2100
    assert isinstance(events_bytes, int) and events_bytes < 2100 * 9 * 1024
    assert stats.completed == 10_000  # the default retention keeps the newest 10,000
    # Level: the second half of the run adds little (generous bounds, not a benchmark).
    assert end[1] < half[1] * 1.5 + 2 * 2**20
    assert end[2] < half[2] * 1.25 + 16 * 2**20


def _below(queue: JobQueue, limit: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await queue.get_stats()).waiting <= limit

    return check
