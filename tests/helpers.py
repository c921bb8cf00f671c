"""Small helpers shared by the test modules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

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
