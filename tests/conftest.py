"""Fixtures: one real Redis deployment per test session (never a mock), flushed per test.

By default a single redis-server. ``JOBQUEUE_TEST_REDIS=cluster`` runs the same tests on a
3-primary Redis Cluster and ``JOBQUEUE_TEST_REDIS=sentinel`` on a primary with a replica
and three sentinels (``make test`` runs the suite both ways too, less the files below):
``redis_url`` is then the deployment's URL. A test that reads or plants keys on the
server directly (``helpers.port_of``) or drives the server process (``redis_server``) is
skipped there: it is about one server's contents, not about the topology.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from jobqueue import Backoff, JobQueue
from jobqueue.testing import RedisServer, redis_command
from jobqueue.testing_cluster import RedisCluster
from jobqueue.testing_sentinel import SentinelSet

from .helpers import TOPOLOGY

if TOPOLOGY not in ("single", "cluster", "sentinel"):
    raise pytest.UsageError(f"JOBQUEUE_TEST_REDIS: single, cluster or sentinel, not {TOPOLOGY!r}")
if TOPOLOGY != "single":
    # Run once, with the single server: they start deployments of their own (the
    # fault-injection suite has its cluster and sentinel tests), test the fixtures, or
    # drive a browser (the dashboard's HTTP tests do run on every deployment).
    collect_ignore = [
        "reliability",
        "test_dashboard_browser.py",
        "test_cluster.py",
        "test_sentinel.py",
        "test_tls.py",
        "test_testing.py",
    ]


@pytest.fixture(scope="session")
def redis_deployment() -> Iterator[RedisServer | RedisCluster | SentinelSet]:
    deployment: RedisServer | RedisCluster | SentinelSet
    if TOPOLOGY == "cluster":
        deployment = RedisCluster()
    elif TOPOLOGY == "sentinel":
        deployment = SentinelSet()
    else:
        deployment = RedisServer(extra_args=["--enable-debug-command", "yes"])
    with deployment:
        yield deployment


@pytest.fixture
def redis_server(redis_deployment: RedisServer | RedisCluster | SentinelSet) -> RedisServer:
    """The single redis-server (tests that restart or inspect the server process)."""
    if not isinstance(redis_deployment, RedisServer):
        pytest.skip(f"drives one redis-server's process; runs on a single server, not {TOPOLOGY}")
    return redis_deployment


@pytest.fixture
def redis_url(redis_deployment: RedisServer | RedisCluster | SentinelSet) -> str:
    if isinstance(redis_deployment, RedisServer):
        if not redis_deployment.running:  # a test may have stopped or killed it
            redis_deployment.restart()
        assert redis_command(redis_deployment.port, "FLUSHALL") == "OK"
        return redis_deployment.url
    if isinstance(redis_deployment, RedisCluster):
        for server in redis_deployment.servers:  # replicas refuse it; there are none
            assert redis_command(server.port, "FLUSHALL") == "OK"
        return redis_deployment.url
    assert redis_command(redis_deployment.primary.port, "FLUSHALL") == "OK"
    return redis_deployment.url


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
