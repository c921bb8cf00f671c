"""Fixtures: one real redis-server per test session (never a mock), flushed per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from jobqueue import Backoff, JobQueue
from jobqueue.testing import RedisServer, redis_command


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--enable-debug-command", "yes"]) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if not redis_server.running:  # a test may have stopped or killed it
        redis_server.restart()
    assert redis_command(redis_server.port, "FLUSHALL") == "OK"
    return redis_server.url


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def make_queue(redis_url: str, queue_name: str) -> AsyncIterator[Callable[..., JobQueue]]:
    """Make JobQueues on the test's queue, or on the queue ``name=`` (closed at the end),
    retrying after 20 ms by default so that tests of retries run fast."""
    made: list[JobQueue] = []

    def make(**kwargs: Any) -> JobQueue:
        kwargs.setdefault("default_job_options", {"backoff": Backoff.fixed(20)})
        q = JobQueue(kwargs.pop("name", queue_name), redis=redis_url, **kwargs)
        made.append(q)
        return q

    yield make
    for q in made:
        await q.close(timeout=5000)
