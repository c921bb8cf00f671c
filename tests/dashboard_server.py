"""A real dashboard for the tests: uvicorn serving ``create_app`` on a free port, on its
own thread and event loop, with JobQueues of its own (a JobQueue is used on one loop)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from jobqueue import JobQueue
from jobqueue.dashboard import create_app
from jobqueue.testing import HOST, wait_until

PASSWORD = "correct horse battery staple"


@contextmanager
def running_dashboard(
    redis_url: str,
    names: Sequence[str] | None,
    *,
    queue_class: Callable[..., JobQueue] = JobQueue,
    mount_at: str | None = None,
    **app_options: Any,
) -> Iterator[str]:
    """Serve the dashboard of the queues ``names`` (None: every queue of the Redis, from
    its index), at ``mount_at`` in an outer app as a user mounts it in theirs; yields its
    base URL."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind((HOST, 0))  # bound here, so no other process can take the port first
    port = listening.getsockname()[1]
    servers: list[uvicorn.Server] = []
    failures: list[BaseException] = []

    async def serve() -> None:
        queues = [queue_class(name, redis=redis_url) for name in names or ()]
        if names is None:
            app: Any = create_app(None, redis=redis_url, **app_options)
        else:
            app = create_app(queues, **app_options)
        if mount_at is not None:
            app = Starlette(routes=[Mount(mount_at, app)])
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        servers.append(server)
        try:
            await server.serve(sockets=[listening])
        finally:
            for queue in queues:
                await queue.close()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name="dashboard", daemon=True)
    thread.start()
    try:
        wait_until(
            "dashboard started", lambda: bool(failures) or (bool(servers) and servers[0].started)
        )
        assert not failures, failures
        yield f"http://{HOST}:{port}{mount_at or ''}"
    finally:
        if servers:
            servers[0].should_exit = True
        thread.join(timeout=30)
        listening.close()
        assert not thread.is_alive(), "the dashboard did not stop"
        assert not failures, failures
