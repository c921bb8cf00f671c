"""A flow's children in another queue (another slot) than their parent: the worker that
finishes a child is SIGKILLed at each step between the child's ack and its parent's
update (docs/flows.md). The parent must run exactly once, after its last child, and the
outbox must end empty."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobqueue import Flow, JobQueue, JobStatus, QueueSettings, WorkerConfig
from jobqueue.job import Job
from jobqueue.testing import RedisServer, redis_command

from ..helpers import eventually

LOCK_MS = 1000
SWEEP_MS = 200
CHILDREN = 6

# A worker of the children's queue; JOBQUEUE_TEST_KILL_AT makes it SIGKILL itself at a
# step of its first handover (src/flows.rs).
CHILD_WORKER = """
import asyncio
from jobqueue import JobQueue, QueueSettings, WorkerConfig

queue = JobQueue(
    "kids", redis={url!r}, worker=WorkerConfig(concurrency=2),
    settings=QueueSettings(lock_duration={lock}, lock_renew_time={renew},
                           max_stalled_interval={sweep}, max_stalled_count={stalls}),
)

@queue.processor("child")
async def child(job):
    with open({ledger!r}, "a") as ledger:
        ledger.write(f"child {{job.id}}\\n")
    if job.data < 0:
        await asyncio.sleep(3600)  # held until the process is killed
    return job.data * 10

async def main():
    await queue.start_worker()
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def server() -> AsyncIterator[RedisServer]:
    with RedisServer() as s:
        yield s


def start_child_worker(
    tmp_path: Path, url: str, kill_at: str | None, stalls: int = 1000
) -> subprocess.Popen[bytes]:
    script = tmp_path / "child_worker.py"
    script.write_text(
        textwrap.dedent(
            CHILD_WORKER.format(
                url=url, lock=LOCK_MS, renew=LOCK_MS // 4, sweep=SWEEP_MS,
                ledger=str(tmp_path / "ledger.txt"), stalls=stalls,
            )
        )
    )  # fmt: skip
    env = dict(os.environ)
    env.pop("JOBQUEUE_TEST_KILL_AT", None)
    if kill_at is not None:
        env["JOBQUEUE_TEST_KILL_AT"] = kill_at
    return subprocess.Popen([sys.executable, str(script)], env=env)


def settings() -> QueueSettings:
    return QueueSettings(
        lock_duration=LOCK_MS, max_stalled_interval=SWEEP_MS, max_stalled_count=1000
    )


@pytest.mark.parametrize("kill_at", ["handover", "outbox"])
async def test_a_worker_killed_between_a_child_and_its_parent(
    tmp_path: Path, server: RedisServer, kill_at: str
) -> None:
    runs: list[tuple[str, dict[str, int]]] = []
    parents = JobQueue(
        "parents", redis=server.url, settings=settings(), worker=WorkerConfig(concurrency=4)
    )

    @parents.processor("parent")
    async def parent(job: Job[None]) -> int:
        runs.append((job.id, await job.children_results()))
        return len(runs)

    async with parents, JobQueue("kids", redis=server.url, settings=settings()) as kids:
        ids = await parents.add_flow(
            Flow("parent", None, [Flow("child", i, queue="kids") for i in range(CHILDREN)])
        )
        await parents.start_worker()
        doomed = start_child_worker(tmp_path, server.url, kill_at)
        assert doomed.wait(timeout=60) == -9  # it killed itself at the step

        ledger = tmp_path / "ledger.txt"
        finished = [line.split()[1] for line in ledger.read_text().splitlines()]
        outbox = redis_command(server.port, "LLEN", "jq:{kids}:flow:outbox:2")
        assert outbox >= 1, "the killed worker left its children's outcomes in the outbox"
        if kill_at == "handover":
            info = await parents.get_job_status(ids.id)
            assert info is not None and info.status is JobStatus.WAITING_CHILDREN
        assert not runs

        # A new worker of the children's queue: its sweep replays the outbox, and it
        # runs the children the dead worker held or never took.
        rescuer = start_child_worker(tmp_path, server.url, None)
        try:

            async def parent_ran() -> bool:
                return bool(runs)

            await eventually(parent_ran, timeout=30)

            async def outbox_empty() -> bool:
                return redis_command(server.port, "LLEN", "jq:{kids}:flow:outbox:2") == 0

            await eventually(outbox_empty, timeout=10)
            # Two more sweeps: a replay of what was already told changes nothing.
            await asyncio.sleep(3 * SWEEP_MS / 1000)
        finally:
            rescuer.kill()
            rescuer.wait()

        assert len(runs) == 1, "the parent ran exactly once"
        job_id, results = runs[0]
        assert job_id == ids.id
        assert results == {f"kids:{c.id}": i * 10 for i, c in enumerate(ids.children)}
        done = await parents.wait_for(ids.id, timeout=10_000)
        assert done.status is JobStatus.COMPLETED
        children = [await kids.get_job_status(c.id) for c in ids.children]
        assert all(c is not None and c.status is JobStatus.COMPLETED for c in children)
        # Never before the last child: it started after every child finished.
        assert done.processed_at is not None
        assert all(
            c is not None and c.finished_at is not None and c.finished_at <= done.processed_at
            for c in children
        )
        assert set(finished) <= {c.id for c in ids.children}
        stats = await parents.get_stats()
        assert (stats.waiting_children, stats.waiting, stats.active) == (0, 0, 0)


async def test_a_child_that_stalls_for_good_fails_its_parent_in_another_queue(
    tmp_path: Path, server: RedisServer
) -> None:
    """The stalled sweep fails the child (over max_stalled_count): its parent, in another
    slot, hears of it through the outbox and fails, naming the child."""
    async with JobQueue("parents", redis=server.url, settings=settings()) as parents:
        ids = await parents.add_flow(
            Flow("parent", None, [Flow("child", -1, queue="kids"), Flow("child", 1, queue="kids")])
        )
        doomed = start_child_worker(tmp_path, server.url, None, stalls=0)
        try:

            async def holding() -> bool:
                ledger = tmp_path / "ledger.txt"
                return ledger.exists() and f"child {ids.children[0].id}" in ledger.read_text()

            await eventually(holding, timeout=30)
        finally:
            doomed.kill()
            doomed.wait()
        rescuer = start_child_worker(tmp_path, server.url, None, stalls=0)
        try:

            async def parent_failed() -> bool:
                info = await parents.get_job_status(ids.id)
                return info is not None and info.status is JobStatus.FAILED

            await eventually(parent_failed, timeout=30)
        finally:
            rescuer.kill()
            rescuer.wait()
        info = await parents.get_job_status(ids.id)
        assert info is not None and info.failed_reason is not None
        assert info.failed_reason.startswith(
            f"child jq:{{kids}}: {ids.children[0].id} failed: job stalled"
        )
