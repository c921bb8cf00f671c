"""Scheduler races: several scheduler processes, one of them SIGKILLed, still enqueue
each tick exactly once. Each scenario runs its own redis-server."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jobqueue import JobInfo, JobQueue, JobStatus
from jobqueue.testing import RedisServer

from ..helpers import eventually


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


SCHEDULER_PROCESS = """
import asyncio
from jobqueue import JobQueue

async def main():
    queue = JobQueue({name!r}, redis={url!r})
    await queue.start_worker()   # the queue is paused: this process only schedules
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _start_schedulers(
    tmp_path: Path, url: str, name: str, count: int
) -> list[subprocess.Popen[bytes]]:
    script = tmp_path / "scheduler_process.py"
    script.write_text(textwrap.dedent(SCHEDULER_PROCESS.format(name=name, url=url)))
    return [
        subprocess.Popen([sys.executable, str(script)], env=dict(os.environ)) for _ in range(count)
    ]


async def _ticks(queue: JobQueue, at_least: int) -> list[int]:
    async def enough() -> list[JobInfo]:
        jobs = await queue.get_jobs_by_status(JobStatus.PAUSED, 10_000)
        return jobs if len(jobs) >= at_least else []

    jobs = await eventually(enough, timeout=60, interval=0.1)
    return [j.scheduled_for or 0 for j in jobs]


def _assert_every_tick_exactly_once(ticks: list[int], interval: int) -> None:
    assert len(ticks) == len(set(ticks)), "a tick was enqueued twice"
    ordered = sorted(ticks)
    gaps = {b - a for a, b in itertools.pairwise(ordered)}
    assert gaps == {interval}, f"ticks missing or irregular: gaps {sorted(gaps)}"


@pytest.fixture
async def beat(server: RedisServer) -> AsyncIterator[JobQueue]:
    """A schedule every 100 ms on a paused queue: its jobs pile up, only the ticks count."""
    queue = JobQueue("races", redis=server.url)
    await queue.pause()
    await queue.schedule_every("beat", None, 100, schedule_id="beat")
    yield queue
    await queue.close()


@contextlib.contextmanager
def schedulers(
    tmp_path: Path, queue: JobQueue, count: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = _start_schedulers(tmp_path, queue.redis_config.url or "", queue.name, count)
    try:
        yield processes
    finally:
        for p in processes:
            p.kill()
            p.wait()


async def test_three_scheduler_processes_enqueue_each_tick_once(
    tmp_path: Path, beat: JobQueue
) -> None:
    with schedulers(tmp_path, beat, 3):
        ticks = await _ticks(beat, 35)
    _assert_every_tick_exactly_once(ticks, 100)


async def test_a_scheduler_killed_mid_run_loses_no_tick(tmp_path: Path, beat: JobQueue) -> None:
    with schedulers(tmp_path, beat, 2) as processes:
        await _ticks(beat, 10)
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait()
        ticks = await _ticks(beat, 40)
    _assert_every_tick_exactly_once(ticks, 100)
