"""Prefetch never strands a job: a job kept behind a slow one goes back to the queue within
the keep bound (src/handover.rs), where an idle worker takes it, and the queue's counts
are exact again after that bound."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from jobqueue import JobQueue, JobStatus, QueueSettings, WorkerConfig
from jobqueue.job import Job

from .helpers import HeldJobs, eventually, warm_up

#: The issue's bound: every short job starts within this long of being added.
START_BOUND_S = 0.1


async def test_no_short_job_waits_behind_a_long_one_while_a_worker_idles(
    make_queue: Callable[..., JobQueue],
) -> None:
    producer = make_queue()
    workers = [make_queue(worker=WorkerConfig(concurrency=1)) for _ in range(2)]
    release_long = asyncio.Event()
    started: dict[str, float] = {}

    async def short(job: Job[None]) -> None:
        started[job.id] = time.monotonic()

    async def long(job: Job[None]) -> None:
        started[job.id] = time.monotonic()
        await asyncio.wait_for(release_long.wait(), 5)  # the 5 s job, ended early

    for worker in workers:
        worker.process("short", short)
        worker.process("long", long)
        await worker.start_worker()
    await warm_up(producer, 300)

    added_at = time.monotonic()
    ids = await producer.add_jobs([("long", None)] + [("short", None)] * 4)
    shorts = ids[1:]

    async def all_short_jobs_started() -> bool:
        return all(job_id in started for job_id in shorts)

    await eventually(all_short_jobs_started, timeout=10)
    release_long.set()
    late = {job_id: round(started[job_id] - added_at, 3) for job_id in shorts}
    assert max(late.values()) < START_BOUND_S, f"seconds from add to start: {late}"
    for job_id in ids:
        await producer.wait_for(job_id, 10_000)


async def test_a_kept_job_goes_back_to_waiting_unused_and_counts_are_exact(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=1))
    jobs = HeldJobs(queue)
    await jobs.start(50)
    held = await queue.add_jobs([("hold", None) for _ in range(3)])
    await jobs.until_running(1)

    async def counts_exact() -> bool:
        stats = await queue.get_stats()
        return (stats.active, stats.waiting) == (1, 2)

    # The worker runs one job; a second, prefetched behind it, comes back after the bound
    # (before, it stayed active until the first finished: active 2, waiting 1).
    await eventually(counts_exact)
    infos = [await queue.get_job_status(job_id) for job_id in held]
    statuses = [info.status for info in infos if info is not None]
    assert sorted(statuses, key=str) == sorted(
        [JobStatus.ACTIVE, JobStatus.WAITING, JobStatus.WAITING], key=str
    )
    for info in infos:
        assert info is not None
        if info.status is JobStatus.WAITING:
            assert info.attempts == 0  # returning it used no attempt
            assert info.processed_at is None
    # It stays that way: the worker does not fetch it again while its slot is held.
    await asyncio.sleep(0.2)
    assert await counts_exact()
    jobs.gate.set()
    for job_id in held:
        info = await queue.wait_for(job_id, 10_000)
        assert info.status is JobStatus.COMPLETED and info.attempts == 1
    assert jobs.most_running == 1
    # Fetch order is kept: the jobs ran in the order they were added.
    infos = [await queue.get_job_status(job_id) for job_id in held]
    processed = [info.processed_at for info in infos if info is not None]
    assert processed == sorted(processed)  # type: ignore[type-var]


async def test_a_job_given_back_and_fetched_again_by_its_worker_runs_once(
    make_queue: Callable[..., JobQueue],
) -> None:
    # The release of a kept job and its new fetch by the same worker can cross: the
    # release's reply must not drop the new attempt (it then ran unrenewed, its result was
    # refused as lost, and it ran again after its lock lapsed). Found in review.
    rng = random.Random(3)
    queue = make_queue(
        worker=WorkerConfig(concurrency=1),
        settings=QueueSettings(lock_duration=1500, max_stalled_interval=300),
    )
    runs: dict[str, int] = {}

    @queue.processor("short")
    async def short(job: Job[None]) -> None:
        return None

    @queue.processor("step")
    async def step(job: Job[float]) -> None:
        runs[job.id] = runs.get(job.id, 0) + 1
        if job.data:
            await asyncio.sleep(job.data)  # about the keep bound: the release races a slot

    await queue.start_worker()
    await warm_up(queue, 50)
    ids: list[str] = []
    for _ in range(250):
        ids += await queue.add_jobs([("step", rng.uniform(0.0185, 0.0215))] + [("step", 0)] * 3)
        await queue.wait_for(ids[-1], 10_000)
    for job_id in ids:
        await queue.wait_for(job_id, 10_000)
    assert {job_id: n for job_id, n in runs.items() if n != 1} == {}
