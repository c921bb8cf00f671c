"""Workers killed with SIGKILL: while holding 50 jobs, and at random points of a long run.
The ledger must balance: every job added ends completed exactly once (by Redis's record,
which a worker that lost its lock cannot write), and nothing is lost."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobqueue import JobQueue, JobStatus, QueueSettings, WorkerConfig
from jobqueue.job import Job
from jobqueue.testing import RedisServer

from ..helpers import eventually

LOCK_MS = 1000
SWEEP_MS = 200

WORKER = """
import asyncio
from jobqueue import JobQueue, QueueSettings, WorkerConfig

queue = JobQueue(
    "crashes", redis={url!r}, worker=WorkerConfig(concurrency={concurrency}),
    partitions={partitions},
    settings=QueueSettings(lock_duration={lock}, lock_renew_time={renew},
                           max_stalled_interval={sweep}, max_stalled_count=1000),
)

@queue.processor("work")
async def work(job):
    with open({ledger!r}, "a") as ledger:
        ledger.write(f"started {{job.id}}\\n")
    await asyncio.sleep({seconds})
    return job.data

async def main():
    await queue.start_worker()
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def server() -> AsyncIterator[RedisServer]:
    with RedisServer() as s:
        yield s


def start_worker(
    tmp_path: Path, url: str, *, concurrency: int, seconds: float, partitions: int = 1
) -> subprocess.Popen[bytes]:
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(
            WORKER.format(
                url=url, concurrency=concurrency, lock=LOCK_MS, renew=LOCK_MS // 4,
                sweep=SWEEP_MS, ledger=str(tmp_path / "ledger.txt"), seconds=seconds,
                partitions=partitions,
            )
        )
    )  # fmt: skip
    return subprocess.Popen([sys.executable, str(script)], env=dict(os.environ))


def rescuer(url: str, partitions: int = 1) -> JobQueue:
    return JobQueue(
        "crashes",
        redis=url,
        partitions=partitions,
        worker=WorkerConfig(concurrency=50),
        settings=QueueSettings(
            lock_duration=LOCK_MS, max_stalled_interval=SWEEP_MS, max_stalled_count=1000
        ),
    )


async def assert_ledger_balances(queue: JobQueue, ids: list[str]) -> None:
    stats = await queue.get_stats()
    assert (stats.waiting, stats.active, stats.delayed, stats.failed, stats.dlq) == (0,) * 5
    completed = await queue.get_jobs_by_status(JobStatus.COMPLETED, len(ids) + 10)
    assert sorted(j.id for j in completed) == sorted(ids)  # each exactly once, none lost
    for job in completed:
        assert job.return_value == job.data


@pytest.mark.parametrize("partitions", [1, 3])
async def test_jobs_of_a_killed_worker_holding_50_are_recovered_in_time(
    tmp_path: Path, server: RedisServer, partitions: int
) -> None:
    """With 3 partitions, each partition's stalled sweep recovers its own jobs."""
    async with JobQueue("crashes", redis=server.url, partitions=partitions) as producer:
        ids = await producer.add_jobs(
            [("work", i, {"remove_on_complete": False}) for i in range(50)]
        )
        # One fetch loop serves all partitions: 60 slots hold the 50 jobs either way.
        doomed = start_worker(
            tmp_path, server.url, concurrency=50 if partitions == 1 else 60, seconds=60,
            partitions=partitions,
        )  # fmt: skip
        try:

            async def holding_50() -> bool:
                ledger = tmp_path / "ledger.txt"
                return ledger.exists() and ledger.read_text().count("started") == 50

            await eventually(holding_50, timeout=30)
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
        killed_at = time.monotonic()
        queue = rescuer(server.url, partitions)
        done: list[str] = []

        @queue.processor("work")
        async def work(job: Job[int]) -> int:
            done.append(job.id)
            return job.data

        await queue.start_worker()

        async def all_done() -> bool:
            return (await producer.get_stats()).completed == 50

        await eventually(all_done, timeout=30)
        recovery = time.monotonic() - killed_at
        print(f"\n50 jobs of a SIGKILLed worker recovered in {recovery:.2f} s")
        assert recovery < (LOCK_MS + SWEEP_MS) / 1000 + 2.0
        assert sorted(done) == sorted(ids)
        await assert_ledger_balances(producer, ids)
        await queue.close(timeout=5000)


async def test_ten_kills_at_random_points_of_a_5000_job_run(
    tmp_path: Path, server: RedisServer
) -> None:
    randomness = random.Random(20261128)
    async with JobQueue("crashes", redis=server.url) as producer:
        ids = await producer.add_jobs(
            [("work", i, {"remove_on_complete": False}) for i in range(5000)]
        )
        for _ in range(10):
            worker = start_worker(tmp_path, server.url, concurrency=20, seconds=0.05)
            await asyncio.sleep(randomness.uniform(0.2, 1.0))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        killed = (await producer.get_stats()).completed
        assert killed < 5000, "the kills must land mid-run"
        queue = rescuer(server.url)

        @queue.processor("work")
        async def work(job: Job[int]) -> int:
            return job.data

        await queue.start_worker()

        async def all_done() -> bool:
            return (await producer.get_stats()).completed == 5000

        await eventually(all_done, timeout=120, interval=0.1)
        runs = (tmp_path / "ledger.txt").read_text().count("started")
        print(f"\n{killed} completed before the finisher; {runs} runs in the killed workers")
        await assert_ledger_balances(producer, ids)
        await queue.close(timeout=5000)
