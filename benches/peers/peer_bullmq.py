"""bullmq: the Python port of BullMQ (same Lua scripts and Redis layout as the Node one)."""

from __future__ import annotations

import asyncio
from typing import Any

from bullmq import Queue
from bullmq import Worker as BullWorker

DIST = "bullmq"
QUEUE = "bench"
BULK = "addBulk: one call per batch"
NOTES = "Worker(concurrency=c); completed jobs kept (library default)"


class Client:
    def __init__(self, url: str) -> None:
        self.queue = Queue(QUEUE, {"connection": url})

    async def open(self) -> None:
        pass

    async def add(self, payload: dict[str, Any]) -> None:
        await self.queue.add("noop", payload)

    async def add_many(self, payloads: list[dict[str, Any]]) -> None:
        await self.queue.addBulk([{"name": "noop", "data": p} for p in payloads])

    async def close(self) -> None:
        await self.queue.close()


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        self.url = url
        self.concurrency = concurrency
        self.handle = handle
        self.worker: Any = None

    async def setup(self) -> None:
        async def noop(job: Any, token: str) -> None:
            self.handle(job.data)

        self.worker = BullWorker(
            QUEUE,
            noop,
            {"connection": self.url, "concurrency": self.concurrency, "autorun": False},
        )

    async def run(self) -> None:
        await self.worker.run()

    async def stop(self) -> None:
        await asyncio.wait_for(self.worker.close(), 10)
