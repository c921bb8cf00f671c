"""arq: jobs are sorted-set entries the worker polls for (every ``poll_delay``, 0.5 s by
default; kept, as it is what users get)."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker as ArqWorker
from arq.worker import func

DIST = "arq"
QUEUE = "bench"
BULK = "no bulk API: asyncio.gather of enqueue_job per batch"
NOTES = "Worker(max_jobs=c); poll_delay 0.5 s (default)"


class Client:
    def __init__(self, url: str) -> None:
        self.settings = RedisSettings.from_dsn(url)
        self.pool: Any = None

    async def open(self) -> None:
        self.pool = await create_pool(self.settings, default_queue_name=QUEUE)

    async def add(self, payload: dict[str, Any]) -> None:
        await self.pool.enqueue_job("noop", payload)

    async def add_many(self, payloads: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(self.pool.enqueue_job("noop", p) for p in payloads))

    async def close(self) -> None:
        await self.pool.aclose()


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        async def noop(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
            handle(payload)

        self.settings = RedisSettings.from_dsn(url)
        self.function = func(noop, name="noop")
        self.concurrency = concurrency
        self.worker: Any = None

    async def setup(self) -> None:
        pool = await create_pool(self.settings, default_queue_name=QUEUE)
        self.worker = ArqWorker(
            functions=[self.function],
            redis_pool=pool,
            queue_name=QUEUE,
            max_jobs=self.concurrency,
            handle_signals=False,
        )

    async def run(self) -> None:
        await self.worker.async_run()

    async def stop(self) -> None:
        await self.worker.close()
