"""chasquimq: Redis streams with a Rust engine (fred) under an asyncio surface."""

from __future__ import annotations

from typing import Any

from chasquimq import Queue
from chasquimq import Worker as ChasquiWorker

DIST = "chasquimq"
QUEUE = "bench"
BULK = "add_bulk: one call per batch"
NOTES = "Worker(concurrency=c); library defaults otherwise (events on)"
# Its producer sends XADD ... IDMP (Redis 8.6); older servers answer "ERR Invalid stream ID".
REDIS_MIN = "8.6"


class Client:
    def __init__(self, url: str) -> None:
        self.queue = Queue(QUEUE, redis_url=url)

    async def open(self) -> None:
        pass

    async def add(self, payload: dict[str, Any]) -> None:
        await self.queue.add("noop", payload)

    async def add_many(self, payloads: list[dict[str, Any]]) -> None:
        await self.queue.add_bulk([{"name": "noop", "data": p} for p in payloads])

    async def close(self) -> None:
        await self.queue.close()


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        async def noop(job: Any) -> None:
            handle(job.data)

        self.worker = ChasquiWorker(QUEUE, noop, redis_url=url, concurrency=concurrency)

    async def setup(self) -> None:
        pass

    async def run(self) -> None:
        await self.worker.run()

    async def stop(self) -> None:
        await self.worker.close()
