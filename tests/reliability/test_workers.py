"""Many workers, crashes and races: every job is completed, and completed once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from jobqueue import JobQueue, JobStatus, QueueSettings, RateLimit, WorkerConfig
from jobqueue.job import Job
from jobqueue.testing import redis_command

from ..helpers import eventually, port_of


async def _true(value: bool) -> bool:
    return value


async def test_concurrent_adds_with_one_idempotency_key_create_one_job(
    make_queue: Callable[..., JobQueue],
) -> None:
    a, b = make_queue(), make_queue()  # two connections racing
    ids = await asyncio.gather(
        *(q.add_job("pay", {"order": 7}, idempotency_key="order-7") for q in [a, b] * 25)
    )
    assert len(set(ids)) == 1
    assert (await a.get_stats()).waiting == 1


async def test_concurrency_is_never_exceeded(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=3))
    running = 0
    peak = 0

    @queue.processor("work")
    async def work(job: Job[None]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    ids = await queue.add_jobs([("work", None) for _ in range(30)])
    await queue.start_worker()
    for job_id in ids:
        await queue.wait_for(job_id, 30_000)
    assert peak == 3


async def test_two_workers_complete_each_of_1000_jobs_exactly_once(
    make_queue: Callable[..., JobQueue],
) -> None:
    completed: dict[str, list[str]] = {"a": [], "b": []}
    workers = []
    for name in completed:
        q = make_queue(worker=WorkerConfig(concurrency=20))

        async def process(job: Job[int], name: str = name) -> int:
            completed[name].append(job.id)
            return job.data

        q.process("n", process)
        workers.append(q)
    producer = make_queue()
    ids = await producer.add_jobs([("n", i, {"remove_on_complete": False}) for i in range(1000)])
    for q in workers:
        await q.start_worker()

    async def all_done() -> bool:
        return (await producer.get_stats()).completed == 1000

    await eventually(all_done, timeout=60)
    everything = completed["a"] + completed["b"]
    assert sorted(everything, key=int) == ids  # each job once, none missing
    assert completed["a"] and completed["b"]  # both workers took part
    for info in await producer.get_jobs_by_status(JobStatus.COMPLETED, 1000):
        assert info.attempts == 1


async def test_rate_limit_holds_across_two_workers(make_queue: Callable[..., JobQueue]) -> None:
    limiter = RateLimit(max=3, duration=400)
    starts: list[int] = []
    workers = [make_queue(worker=WorkerConfig(concurrency=5, limiter=limiter)) for _ in range(2)]
    for q in workers:

        async def record(job: Job[None]) -> None:
            starts.append(job.processed_at)

        q.process("limited", record)
    ids = await workers[0].add_jobs([("limited", None) for _ in range(9)])
    for q in workers:
        await q.start_worker()
    for job_id in ids:
        await workers[0].wait_for(job_id, 30_000)
    starts.sort()
    for i in range(len(starts) - 3):
        assert starts[i + 3] - starts[i] >= 350, starts  # never 4 starts in one window


CRASHING_WORKER = """
import asyncio
from jobqueue import JobQueue, QueueSettings, WorkerConfig
from jobqueue.testing import redis_command

queue = JobQueue(
    {name!r},
    redis={url!r},
    settings=QueueSettings(lock_duration=1000, lock_renew_time=250),
    worker=WorkerConfig(concurrency=4),
)

@queue.processor("slow")
async def slow(job):
    redis_command({port}, "RPUSH", "started-in-doomed-worker", job.id)
    await asyncio.sleep(60)

async def main():
    await queue.start_worker()
    await asyncio.Event().wait()

asyncio.run(main())
"""


def start_crashing_worker(
    tmp_path: Path, queue_name: str, redis_url: str
) -> subprocess.Popen[bytes]:
    """A worker process of CRASHING_WORKER on the queue, for a test to SIGKILL."""
    script = tmp_path / "doomed.py"
    script.write_text(
        textwrap.dedent(
            CRASHING_WORKER.format(name=queue_name, url=redis_url, port=port_of(redis_url))
        )
    )
    return subprocess.Popen([sys.executable, str(script)], env=dict(os.environ))


async def test_jobs_of_a_worker_killed_with_sigkill_are_recovered(
    tmp_path: Path, redis_url: str, queue_name: str, make_queue: Callable[..., JobQueue]
) -> None:
    port = port_of(redis_url)
    producer = make_queue()
    ids = await producer.add_jobs([("slow", i, {"remove_on_complete": False}) for i in range(10)])
    doomed = start_crashing_worker(tmp_path, queue_name, redis_url)
    try:

        async def running_four() -> bool:
            return redis_command(port, "LLEN", "started-in-doomed-worker") == 4

        await eventually(running_four, timeout=30)
        assert (await producer.get_stats()).active == 4
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    started = redis_command(port, "LRANGE", "started-in-doomed-worker", "0", "-1")
    assert isinstance(started, list) and len(started) == 4
    crashed = {s.decode() for s in started if isinstance(s, bytes)}

    rescuer = make_queue(settings=QueueSettings(max_stalled_interval=200, max_stalled_count=1))
    done: list[str] = []
    stalled: list[str] = []

    @rescuer.processor("slow")
    async def quick(job: Job[int]) -> int:
        done.append(job.id)
        return job.data

    rescuer.on("job-stalled", lambda job: stalled.append(job.id))
    await rescuer.start_worker()
    for job_id in ids:
        info = await rescuer.wait_for(job_id, 30_000)
        assert info.status is JobStatus.COMPLETED
        assert info.attempts == 1  # the crashed attempt was a stall, not an attempt
    assert sorted(done, key=int) == ids  # every job completed, each once
    assert set(stalled) == crashed
