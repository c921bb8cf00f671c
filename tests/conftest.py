"""Fixtures: one real redis-server per test session (never a mock), flushed per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from jobqueue.testing import RedisServer, redis_command


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--enable-debug-command", "yes"]) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if not redis_server.running:  # a test may have stopped or killed it
        redis_server.restart()
    redis_command(redis_server.port, "FLUSHALL")
    return redis_server.url


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"
