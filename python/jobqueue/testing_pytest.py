"""The pytest plugin of ``jobqueue.testing``: test your processors against a real Redis.

Installed with jobqueue and loaded by pytest through the ``pytest11`` entry point (turn it
off with ``-p no:jobqueue``). Fixtures:

- ``redis_server``: one throwaway redis-server (``jobqueue.testing.RedisServer``) on a
  free loopback port for the whole test session; it needs ``redis-server`` on PATH.
- ``redis_url``: its URL, after ``FLUSHALL``, so every test starts from an empty Redis.
- ``queue``: a ``JobQueue`` named after the test on that server, closed after the test
  (an async fixture: it needs pytest-asyncio).

>>> @pytest.mark.asyncio
... async def test_welcome_email(queue: JobQueue) -> None:
...     queue.process("welcome", send_welcome)
...     await queue.start_worker()
...     job_id = await queue.add_job("welcome", {"email": "a@example.com"})
...     assert (await queue.wait_for(job_id, timeout=10_000)).return_value == {"sent": True}

A fixture of the same name in your ``conftest.py`` takes precedence over these. Importing
this module imports neither ``jobqueue``'s native core nor pytest-asyncio until a test
asks for ``queue``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .testing import RedisServer, redis_command

if TYPE_CHECKING:
    from .queue import JobQueue

__all__ = ["queue", "redis_server", "redis_url"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free loopback port, for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL; the server is emptied (``FLUSHALL``) for every test, and started
    again if a test stopped it."""
    if not redis_server.running:
        redis_server.restart()
    redis_command(redis_server.port, "FLUSHALL")
    return redis_server.url


def _queue_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{base or 'test'}-{uuid.uuid4().hex[:6]}"


async def _queue(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[JobQueue]:
    from .queue import JobQueue

    q = JobQueue(_queue_name(request), redis=redis_url)
    try:
        yield q
    finally:
        await q.close(timeout=5000)


def _needs_pytest_asyncio() -> NoReturn:
    pytest.fail("jobqueue's `queue` fixture is async: install pytest-asyncio", pytrace=False)


queue: Any
try:
    import pytest_asyncio
except ImportError:  # the other fixtures work without it
    queue = pytest.fixture(name="queue")(_needs_pytest_asyncio)
else:
    queue = pytest_asyncio.fixture(name="queue")(_queue)
