"""Serve the dashboard with uvicorn, as ``jobqueue dashboard`` does."""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

import uvicorn

from ..queue import JobQueue
from ..redis_config import RedisConfig
from .app import create_app
from .auth import AuthHook

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stopped(signum: int, frame: FrameType | None) -> None:
    """uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again for the
    handler it found: this one lets ``serve`` return, so that the queues get closed."""


#: How long a stop waits for open connections (pages following live events) to end (s).
GRACEFUL_STOP_S = 5


async def serve(
    queues: Sequence[JobQueue] | None,
    *,
    redis: RedisConfig | str | Mapping[str, Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    auth: AuthHook | None,
    read_only: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    log_level: str = "info",
) -> None:
    """Serve the dashboard of ``queues`` (None: every queue at ``redis``) until
    SIGINT/SIGTERM, then close the queues."""
    app = create_app(
        queues, redis=redis, auth=auth, read_only=read_only, allowed_hosts=allowed_hosts
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_STOP_S,
    )
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, _stopped) for sig in _STOP_SIGNALS} if in_main_thread else {}
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for queue in queues or ():
            await queue.close()
