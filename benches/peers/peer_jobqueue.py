"""jobqueue (this project)."""

from __future__ import annotations

from typing import Any

from jobqueue import JobQueue, WorkerConfig
from jobqueue import sync as jobqueue_sync

DIST = "jobqueue"
QUEUE = "bench"
BULK = "add_jobs: one call per batch"
NOTES = "WorkerConfig(concurrency=c); library defaults otherwise"


class Client:
    def __init__(self, url: str) -> None:
        self.queue = JobQueue(QUEUE, redis=url)

    async def open(self) -> None:
        pass

    async def add(self, payload: dict[str, Any]) -> None:
        await self.queue.add_job("noop", payload)

    async def add_many(self, payloads: list[dict[str, Any]]) -> None:
        await self.queue.add_jobs([("noop", p) for p in payloads])

    async def close(self) -> None:
        await self.queue.close()


class SyncClient:
    """The blocking facade (``jobqueue.sync``), as a Django or Flask service uses it."""

    def __init__(self, url: str) -> None:
        self.queue = jobqueue_sync.JobQueue(QUEUE, redis=url)

    def open(self) -> None:
        pass

    def add(self, payload: dict[str, Any]) -> None:
        self.queue.add_job("noop", payload)

    def close(self) -> None:
        self.queue.close()


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        self.queue = JobQueue(QUEUE, redis=url, worker=WorkerConfig(concurrency=concurrency))

        @self.queue.processor("noop")
        async def noop(job: Any) -> None:
            handle(job.data)

    async def setup(self) -> None:
        pass

    async def run(self) -> None:
        await self.queue.start_worker()  # returns once the worker runs in the background

    async def stop(self) -> None:
        await self.queue.close()
