"""saq."""

from __future__ import annotations

import asyncio
from typing import Any

from saq import Queue
from saq import Worker as SaqWorker

DIST = "saq"
QUEUE = "bench"
BULK = "no bulk API (map() also waits for results): asyncio.gather of enqueue per batch"
NOTES = "Worker(concurrency=c); library defaults otherwise"


class Client:
    def __init__(self, url: str) -> None:
        self.queue = Queue.from_url(url, name=QUEUE)

    async def open(self) -> None:
        await self.queue.connect()

    async def add(self, payload: dict[str, Any]) -> None:
        await self.queue.enqueue("noop", payload=payload)

    async def add_many(self, payloads: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(self.queue.enqueue("noop", payload=p) for p in payloads))

    async def close(self) -> None:
        await self.queue.disconnect()


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        async def noop(ctx: Any, *, payload: dict[str, Any]) -> None:
            handle(payload)

        self.queue = Queue.from_url(url, name=QUEUE)
        self.worker = SaqWorker(self.queue, functions=[("noop", noop)], concurrency=concurrency)

    async def setup(self) -> None:
        await self.queue.connect()

    async def run(self) -> None:
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
