"""Serve the dashboard with uvicorn, as ``jobqueue dashboard`` does."""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn

from ..queue import JobQueue
from .app import create_app
from .auth import BasicAuth


async def serve(
    queues: Sequence[JobQueue],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    auth: BasicAuth | None,
    read_only: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    log_level: str = "info",
) -> None:
    """Serve the dashboard of ``queues`` until SIGINT/SIGTERM, then close the queues."""
    app = create_app(
        queues, auth=auth, read_only=read_only, allowed_hosts=allowed_hosts
    )
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower())
    try:
        await uvicorn.Server(config).serve()
    finally:
        for queue in queues:
            await queue.close()
