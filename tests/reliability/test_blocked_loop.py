"""A processor that blocks the event loop for over three lock durations keeps its
lock (renewed by the native core) and runs once."""

from __future__ import annotations

import time
from collections.abc import Callable

from jobqueue import JobQueue, JobStatus, QueueSettings
from jobqueue.job import Job

from ..helpers import eventually


async def _true(value: bool) -> bool:
    return value


async def test_a_blocked_event_loop_does_not_lose_the_lock(
    make_queue: Callable[..., JobQueue],
) -> None:
    settings = QueueSettings(
        lock_duration=600, lock_renew_time=150, max_stalled_interval=100, max_stalled_count=0
    )
    queue = make_queue(settings=settings)
    sweeper = make_queue(settings=settings)  # a second worker sweeping for stalled jobs
    sweeper.process("blocking", lambda job: "wrong worker")
    runs: list[str] = []

    @queue.processor("blocking")
    async def blocking(job: Job[None]) -> str:
        runs.append(job.id)
        time.sleep(2.0)  # blocks the event loop for over three times the lock duration
        return "done"

    await queue.start_worker()
    job_id = await queue.add_job("blocking", None)
    await eventually(lambda: _true(runs == [job_id]))
    await sweeper.start_worker()
    info = await queue.wait_for(job_id, 10_000)
    assert (info.status, info.return_value, info.attempts) == (JobStatus.COMPLETED, "done", 1)
    assert runs == [job_id]
