"""Faults of Redis itself: gone while closing, connections cut, a stalled server,
a process paused past its lock. Each scenario runs its own redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue import JobQueue, JobStatus, QueueEvent, QueueSettings, RedisConfig, WorkerConfig
from jobqueue.job import Job
from jobqueue.testing import RedisServer, redis_command

from ..helpers import eventually


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--enable-debug-command", "yes"]) as s:
        yield s


async def test_close_returns_within_its_timeout_when_redis_is_gone(server: RedisServer) -> None:
    queue = JobQueue("gone", redis=RedisConfig(url=server.url, connect_timeout=5000))
    started = asyncio.Event()

    @queue.processor("slow")
    async def slow(job: Job[None]) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "done"

    await queue.start_worker()
    await queue.add_job("slow", None)
    await started.wait()
    server.kill()
    began = time.monotonic()
    await queue.close(timeout=1500)
    assert time.monotonic() - began < 4  # the timeout, plus a generous margin


async def test_health_check_reports_a_dead_redis_within_the_connect_timeout(
    server: RedisServer,
) -> None:
    async with JobQueue("gone", redis=RedisConfig(url=server.url, connect_timeout=800)) as q:
        assert await q.health_check()
        server.kill()
        began = time.monotonic()
        report = await q.health_check()
        assert not report and report.error
        assert time.monotonic() - began < 3


async def test_cut_connections_and_a_stalled_server_do_not_lose_jobs(server: RedisServer) -> None:
    queue = JobQueue(
        "cuts",
        redis=server.url,
        worker=WorkerConfig(concurrency=20),
        settings=QueueSettings(lock_duration=4000, max_stalled_interval=500),
        default_job_options={"backoff": 10, "attempts": 5},
    )
    done: list[str] = []
    errors: list[BaseException] = []
    queue.on(QueueEvent.QUEUE_ERROR, lambda job, error: errors.append(error))

    @queue.processor("work")
    async def work(job: Job[int]) -> int:
        await asyncio.sleep(0.005)
        done.append(job.id)
        return job.data

    ids = await queue.add_jobs([("work", i, {"remove_on_complete": False}) for i in range(2000)])
    await queue.start_worker()

    async def some_done() -> bool:
        return len(done) > 200

    await eventually(some_done)
    for _ in range(3):
        redis_command(server.port, "CLIENT", "KILL", "TYPE", "normal")
        await asyncio.sleep(0.1)
    redis_command(server.port, "DEBUG", "SLEEP", "2")

    async def all_done() -> bool:
        try:
            return (await queue.get_stats()).completed == len(ids)
        except Exception:
            return False  # our own connection was cut too

    await eventually(all_done, timeout=60, interval=0.1)
    assert set(done) == set(ids)  # every job ran; a cut may make a few run twice
    assert errors, "the cut connections were reported as QUEUE_ERROR"
    for job in await queue.get_jobs_by_status(JobStatus.COMPLETED, len(ids)):
        assert job.status is JobStatus.COMPLETED
    await queue.close(timeout=5000)


PAUSABLE_WORKER = """
import asyncio, sys
from jobqueue import JobQueue, QueueSettings

queue = JobQueue({name!r}, redis={url!r},
                 settings=QueueSettings(lock_duration=1000, lock_renew_time=200))

@queue.processor("fenced")
async def fenced(job):
    open({ledger!r}, "a").write("started-by-paused\\n")
    await asyncio.sleep(1.0)
    return "from the paused worker"

async def main():
    await queue.start_worker()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_worker_paused_past_its_lock_cannot_complete_the_job(
    tmp_path: Path, server: RedisServer
) -> None:
    ledger = tmp_path / "ledger.txt"
    script = tmp_path / "pausable.py"
    script.write_text(
        textwrap.dedent(PAUSABLE_WORKER.format(name="fence", url=server.url, ledger=str(ledger)))
    )
    async with JobQueue("fence", redis=server.url) as producer:
        job_id = await producer.add_job("fenced", None, attempts=1)
        paused = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ))
        try:

            async def started() -> bool:
                return ledger.exists() and "started" in ledger.read_text()

            await eventually(started, timeout=30)
            paused.send_signal(signal.SIGSTOP)  # frozen: no renewals, no result yet
            rescuer = JobQueue(
                "fence",
                redis=server.url,
                settings=QueueSettings(max_stalled_interval=100, max_stalled_count=1),
            )
            rescuer.process("fenced", lambda job: "from the rescuer")
            await rescuer.start_worker()
            info = await rescuer.wait_for(job_id, 30_000)
            assert info.return_value == "from the rescuer"
            paused.send_signal(signal.SIGCONT)  # wakes up and tries to complete the job
            await asyncio.sleep(1.5)  # its late ack is refused by the token check
            after = await producer.get_job_status(job_id)
            assert after is not None
            assert (after.status, after.return_value) == (JobStatus.COMPLETED, "from the rescuer")
            assert after.attempts == 1
            await rescuer.close(timeout=5000)
        finally:
            paused.kill()
            paused.wait()
