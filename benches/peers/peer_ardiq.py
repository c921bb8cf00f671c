"""ardiq: Redis streams with a Rust core; needs Python >= 3.12 (its own venv)."""

from __future__ import annotations

from typing import Any

from ardiq import Ardiq

DIST = "ardiq"
QUEUE = "bench"
BULK = "enqueue_many: one call per batch"
NOTES = "Ardiq(concurrency=c); library defaults otherwise"


class Client:
    def __init__(self, url: str) -> None:
        self.app = Ardiq(redis_url=url, queue_name=QUEUE)
        self.task = self.app.ref("noop")

    async def open(self) -> None:
        pass

    async def add(self, payload: dict[str, Any]) -> None:
        await self.task.enqueue(payload)

    async def add_many(self, payloads: list[dict[str, Any]]) -> None:
        await self.app.enqueue_many([self.task.prepare(p) for p in payloads])

    async def close(self) -> None:
        pass


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        self.app = Ardiq(redis_url=url, queue_name=QUEUE, concurrency=concurrency)

        async def noop(payload: dict[str, Any]) -> None:
            handle(payload)

        self.app.task(noop)

    async def setup(self) -> None:
        pass

    async def run(self) -> None:
        await self.app.run()

    async def stop(self) -> None:
        self.app.stop()
