"""streaq: Redis streams; tasks are registered on a ``Worker``, which producers use too."""

from __future__ import annotations

import asyncio
from typing import Any

from streaq import Worker as StreaqWorker

DIST = "streaq"
QUEUE = "bench"
BULK = "enqueue_many: one pipeline per batch"
NOTES = "Worker(concurrency=c); prefetch = concurrency (default)"


def _app(url: str, concurrency: int, handle: Any) -> tuple[Any, Any]:
    app = StreaqWorker(
        redis_url=url, queue_name=QUEUE, concurrency=concurrency, handle_signals=False
    )

    @app.task()
    async def noop(payload: dict[str, Any]) -> None:
        handle(payload)

    return app, noop


class Client:
    def __init__(self, url: str) -> None:
        self.app, self.task = _app(url, 1, None)

    async def open(self) -> None:
        await self.app.__aenter__()

    async def add(self, payload: dict[str, Any]) -> None:
        await self.task.enqueue(payload)

    async def add_many(self, payloads: list[dict[str, Any]]) -> None:
        await self.app.enqueue_many([self.task.enqueue(p) for p in payloads])

    async def close(self) -> None:
        await self.app.__aexit__(None, None, None)


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        self.app, _ = _app(url, concurrency, handle)
        self.task: asyncio.Task[Any] | None = None

    async def setup(self) -> None:
        pass

    async def run(self) -> None:
        self.task = asyncio.current_task()
        await self.app.run_async()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
