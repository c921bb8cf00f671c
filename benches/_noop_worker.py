"""A worker process with a no-op processor, for the benchmarks that need one."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.synchronize import Event

from jobqueue import JobQueue, QueueSettings, WorkerConfig


def _run(
    url: str,
    queue_name: str,
    concurrency: int,
    ready: Event,
    stop: Event,
    settings: QueueSettings | None,
    partitions: int,
) -> None:
    async def run() -> None:
        queue = JobQueue(
            queue_name,
            redis=url,
            worker=WorkerConfig(concurrency=concurrency),
            settings=settings,
            partitions=partitions,
        )

        @queue.processor("noop")
        async def noop(job: object) -> None:
            return None

        await queue.start_worker()
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await queue.close()

    asyncio.run(run())


async def start_noop_worker(
    url: str,
    queue_name: str,
    concurrency: int,
    settings: QueueSettings | None = None,
    partitions: int = 1,
) -> tuple[multiprocessing.process.BaseProcess, Event]:
    """Start the worker process; returns once it runs, with the event that stops it."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    process = ctx.Process(
        target=_run, args=(url, queue_name, concurrency, ready, stop, settings, partitions)
    )
    process.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    return process, stop


async def wait_drained(queue: JobQueue) -> None:
    """Return once the queue has no waiting and no active job."""
    while True:
        stats = await queue.get_stats()
        if stats.waiting == 0 and stats.active == 0:
            return
        await asyncio.sleep(0.005)
