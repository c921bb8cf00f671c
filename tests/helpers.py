"""Small helpers shared by the test modules."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jobqueue import JobQueue
from jobqueue.job import Job
from jobqueue.testing import redis_command

T = TypeVar("T")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def redis_time_ms(port: int) -> int:
    reply = redis_command(port, "TIME")
    assert isinstance(reply, list)
    seconds, micros = (int(x) for x in reply)  # type: ignore[call-overload]
    return seconds * 1000 + micros // 1000


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.01
) -> T:
    """Poll ``check`` until it returns something truthy (and return that), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)


def plant_stalled_job(port: int, queue_name: str, job_id: str, *, attempts: int = 1) -> None:
    """Leave a job as a worker that died mid-job leaves it: active, lock expired."""
    base = f"jq:{{{queue_name}}}:"
    redis_command(port, "LREM", base + "wait", "0", job_id)
    redis_command(
        port, "HSET", base + "job:" + job_id, "state", "active", "lock", "dead-worker",
        "attempts_made", str(attempts),
    )  # fmt: skip
    redis_command(port, "ZADD", base + "active", "1", job_id)


class Counter:
    """A metrics adapter and a telemetry adapter that count what they are given."""

    def __init__(self) -> None:
        self.added = 0.0
        self.spans: list[dict[str, Any]] = []

    def increment(self, name: str, value: float = 1, tags: dict[str, str] | None = None) -> None:
        self.added += value

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        pass

    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> Counter:
        self.spans.append(dict(attributes or {}))
        return self

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def record_exception(self, error: BaseException) -> None:
        pass

    def end(self) -> None:
        pass


async def warm_up(queue: JobQueue, jobs: int) -> None:
    """Run `short` jobs until the workers know their jobs are short (prefetch is on)."""
    for job_id in await queue.add_jobs([("short", None) for _ in range(jobs)]):
        await queue.wait_for(job_id, 10_000)


class HeldJobs:
    """Processors for prefetch tests on ``queue``: ``short`` returns at once, ``hold`` runs
    until ``gate`` is set; ``running`` and ``most_running`` count the held ones."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.gate = asyncio.Event()
        self.running = 0
        self.most_running = 0
        queue.process("short", self._short)
        queue.process("hold", self._hold)

    async def _short(self, job: Job[None]) -> None:
        return None

    async def _hold(self, job: Job[None]) -> str:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await self.gate.wait()
        self.running -= 1
        return "done"

    async def start(self, warm_up_jobs: int) -> None:
        """Start the worker and warm it up, so that it prefetches."""
        await self.queue.start_worker()
        await warm_up(self.queue, warm_up_jobs)

    async def until_running(self, n: int) -> None:
        async def running_n() -> bool:
            return self.running == n

        await eventually(running_n)


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process (a worker stops gracefully), then wait; SIGKILL one that
    does not stop within 10 s."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
