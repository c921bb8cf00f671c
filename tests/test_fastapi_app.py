"""examples/fastapi_app.py through FastAPI's test client, against the suite's real
redis-server: the lifespan opens and closes the queue, a handler enqueues, a worker runs
the job."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jobqueue import JobQueue
from jobqueue.errors import QueueClosedError
from jobqueue.testing import redis_command, wait_until

from .helpers import port_of

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations there
    spec.loader.exec_module(module)
    return module


def wait_for_status(client: TestClient, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        state: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if state["status"] == status:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.02)


def test_a_signup_enqueues_a_job_that_the_worker_runs(example: ModuleType, redis_url: str) -> None:
    app = example.create_app(example.make_queue(redis_url), run_worker=True)
    with TestClient(app) as client:
        reply = client.post("/signup", json={"email": "ada@example.com"})
        assert reply.status_code == 202
        job_id = reply.json()["job_id"]
        state = wait_for_status(client, job_id, "completed")
        assert state["result"] == {"sent_to": "ada@example.com"}


def test_without_a_worker_the_job_waits_and_a_repeat_is_the_same_job(
    example: ModuleType, redis_url: str
) -> None:
    with TestClient(example.create_app(example.make_queue(redis_url))) as client:
        first = client.post("/signup", json={"email": "bob@example.com"}).json()["job_id"]
        again = client.post("/signup", json={"email": "bob@example.com"}).json()["job_id"]
        assert again == first  # the idempotency key
        assert client.get(f"/jobs/{first}").json() == {"status": "waiting", "result": None}
        assert client.get("/jobs/no-such-job").status_code == 404
        assert client.post("/signup", json={}).status_code == 422


def test_the_lifespan_closes_the_queue(example: ModuleType, redis_url: str) -> None:
    jobs: JobQueue = example.make_queue(redis_url)
    with TestClient(example.create_app(jobs)) as client:
        assert client.post("/signup", json={"email": "cy@example.com"}).status_code == 202
    with pytest.raises(QueueClosedError):
        asyncio.run(jobs.add_job("send-welcome", {"email": "late@example.com"}))


def test_the_dashboard_mounted_in_the_app(example: ModuleType, redis_url: str) -> None:
    pytest.importorskip("jinja2")
    app = example.create_app(example.make_queue(redis_url), dashboard_password="s3cret")
    with TestClient(app) as client:
        client.post("/signup", json={"email": "dee@example.com"})
        assert client.get("/admin/jobs/").status_code == 401
        page = client.get("/admin/jobs/queues/emails", auth=("admin", "s3cret"))
        assert page.status_code == 200
        assert '<meta name="jobqueue-base" content="/admin/jobs">' in page.text
        assert 'data-status="waiting"' in page.text
        [shown] = client.get("/admin/jobs/api/queues", auth=("admin", "s3cret")).json()
        assert shown["name"] == "emails" and shown["stats"]["waiting"] == 1


def _clients(port: int) -> int:
    listing = redis_command(port, "CLIENT", "LIST")
    assert isinstance(listing, bytes)
    return len(listing.splitlines())


def test_a_mounted_dashboard_closes_what_it_opened_with_the_host_app(redis_url: str) -> None:
    """Starlette never runs a mounted app's lifespan; run in the host's (README), the
    dashboard's own queues close with the host app."""
    pytest.importorskip("jinja2")
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from jobqueue.dashboard import create_app

    port = port_of(redis_url)
    dashboard = create_app(redis=redis_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with dashboard.router.lifespan_context(dashboard):
            yield

    before = _clients(port)
    with TestClient(Starlette(lifespan=lifespan, routes=[Mount("/jobs", dashboard)])) as client:
        assert client.get("/jobs/api/queues").status_code == 200
        assert _clients(port) > before  # the dashboard's reader, connected
    wait_until("the dashboard's connections closed", lambda: _clients(port) <= before)
