"""rq: synchronous; SimpleWorker runs jobs one at a time in its own process (no
concurrency setting, so the concurrency 50 of the other systems does not apply)."""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker

DIST = "rq"
QUEUE = "bench"
SYNC = True
BULK = "enqueue_many: one pipeline per batch"
NOTES = "SimpleWorker: one job at a time (concurrency not applicable)"

# The job function runs inside the worker process, which sets the handler.
HANDLER: Any = None


def noop(payload: dict[str, Any]) -> None:
    HANDLER(payload)


class Client:
    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.redis)

    def open(self) -> None:
        self.redis.ping()

    def add(self, payload: dict[str, Any]) -> None:
        self.queue.enqueue(noop, payload)

    def add_many(self, payloads: list[dict[str, Any]]) -> None:
        self.queue.enqueue_many([Queue.prepare_data(noop, args=(p,)) for p in payloads])

    def close(self) -> None:
        self.redis.close()


class Worker:
    def __init__(self, url: str, concurrency: int, handle: Any) -> None:
        global HANDLER
        HANDLER = handle
        self.redis = Redis.from_url(url)
        self.worker = SimpleWorker([Queue(QUEUE, connection=self.redis)], connection=self.redis)

    def setup(self) -> None:
        self.redis.ping()

    def run(self) -> None:
        self.worker.work(logging_level="WARNING")

    def stop(self) -> None:
        """Unused: the runner sends SIGTERM, rq's own warm-shutdown signal."""
