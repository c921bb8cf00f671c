"""FastAPI (or any Starlette app): the queue opens and closes with the app, handlers enqueue.

    uvicorn fastapi_app:app                  # the web app: POST /signup enqueues a job
    jobqueue worker fastapi_app:queue        # the workers, as processes of their own
    python fastapi_app.py --demo             # both in one process, through the test client

The queue is made at import (it connects on its first call, on the app's event loop), opened
in the app's lifespan and closed when the app stops, so no request pays for the connection
and no job being added is cut off at shutdown. With ``run_worker=True`` the app also runs a
worker in its own process (handy in development; in production run ``jobqueue worker``).
With $DASHBOARD_PASSWORD set (and the ``dashboard`` extra installed) the app serves the
jobqueue dashboard at /admin/jobs (user ``admin``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from jobqueue import Job, JobQueue


async def send_welcome(job: Job[dict[str, Any]]) -> dict[str, Any]:
    # A real processor would talk to the mail service here.
    return {"sent_to": job.data["email"]}


def make_queue(redis_url: str | None = None) -> JobQueue:
    """The app's queue with its processors (``None``: $JOBQUEUE_REDIS_URL, else
    $REDIS_URL, else redis://localhost:6379/0)."""
    jobs = JobQueue("emails", redis=redis_url)
    jobs.process("send-welcome", send_welcome)
    return jobs


queue = make_queue()


class Signup(BaseModel):
    email: str


def create_app(
    jobs: JobQueue, *, run_worker: bool = False, dashboard_password: str | None = None
) -> FastAPI:
    dashboard = None
    if dashboard_password:
        from jobqueue.dashboard import BasicAuth
        from jobqueue.dashboard import create_app as create_dashboard

        dashboard = create_dashboard([jobs], auth=BasicAuth("admin", dashboard_password))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # connects now; closes (and waits for running jobs) at shutdown
            await stack.enter_async_context(jobs)
            if dashboard is not None:
                # A mounted app's lifespan never runs by itself: the host runs it, so that
                # the dashboard's live-event readers stop with the app.
                await stack.enter_async_context(dashboard.router.lifespan_context(dashboard))
            if run_worker:
                await jobs.start_worker()
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/signup", status_code=202)
    async def signup(body: Signup) -> dict[str, str]:
        job_id = await jobs.add_job(
            "send-welcome", {"email": body.email}, idempotency_key=f"welcome:{body.email}"
        )
        return {"job_id": job_id}

    @app.get("/jobs/{job_id}")
    async def job_status(job_id: str) -> dict[str, Any]:
        info = await jobs.get_job_status(job_id)
        if info is None:
            raise HTTPException(status_code=404, detail="no such job")
        return {"status": info.status.value, "result": info.return_value}

    if dashboard is not None:
        app.mount("/admin/jobs", dashboard)
    return app


app = create_app(queue, dashboard_password=os.environ.get("DASHBOARD_PASSWORD"))


def demo(redis_url: str) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(make_queue(redis_url), run_worker=True)) as client:
        job_id = client.post("/signup", json={"email": "ada@example.com"}).json()["job_id"]
        print(f"POST /signup -> job {job_id}")
        deadline = time.monotonic() + 10
        while (state := client.get(f"/jobs/{job_id}").json())["status"] != "completed":
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        print(f"GET /jobs/{job_id} -> {state}")


if __name__ == "__main__" and "--demo" in sys.argv:
    from jobqueue.testing import RedisServer

    if os.environ.get("REDIS_URL"):
        demo(os.environ["REDIS_URL"])
    else:
        with RedisServer() as server:
            demo(server.url)
