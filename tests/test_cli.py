"""The jobqueue command: a worker process that stops gracefully, and the admin commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from jobqueue import JobQueue, JobStatus

from .helpers import eventually

APP = """
import asyncio
from jobqueue import JobQueue

queue = JobQueue({name!r}, redis={url!r})

@queue.processor("slow")
async def slow(job):
    await asyncio.sleep(job.data["seconds"])
    return "finished"

@queue.processor("broken")
def broken(job):
    raise RuntimeError("always")
"""


def _start_worker(tmp_path: Path, url: str, name: str) -> subprocess.Popen[str]:
    (tmp_path / "cli_app.py").write_text(textwrap.dedent(APP.format(name=name, url=url)))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-m", "jobqueue.cli", "worker", "cli_app:queue", "--concurrency", "4"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def test_worker_process_runs_jobs_and_stops_gracefully_on_sigterm(
    tmp_path: Path, redis_url: str, queue_name: str
) -> None:
    process = _start_worker(tmp_path, redis_url, queue_name)
    try:
        async with JobQueue(queue_name, redis=redis_url) as q:
            quick = await q.add_job("slow", {"seconds": 0}, attempts=1)
            assert (await q.wait_for(quick, 30_000)).status is JobStatus.COMPLETED
            failing = await q.add_job("broken", None, attempts=1)
            assert (await q.wait_for(failing, 30_000)).status is JobStatus.DLQ
            running = await q.add_job("slow", {"seconds": 1})

            async def started() -> bool:
                info = await q.get_job_status(running)
                return info is not None and info.status is JobStatus.ACTIVE

            await eventually(started, timeout=30)
            process.send_signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            output, _ = await loop.run_in_executor(None, lambda: process.communicate(timeout=60))
            assert process.returncode == 0, output
            info = await q.get_job_status(running)
            assert info is not None and info.status is JobStatus.COMPLETED  # finished first
            assert (await q.health_check()).workers == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "started on queue" in output
    assert "failed: always" in output
    assert "SIGTERM received" in output
    assert "worker stopped" in output


def _cli(url: str, *args: str) -> object:
    out = subprocess.run(
        [sys.executable, "-m", "jobqueue.cli", "--redis", url, "--json", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


async def test_admin_commands(redis_url: str, queue_name: str) -> None:
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_jobs([("t", i) for i in range(3)])
        await q.add_job("t", None, delay=60_000)
    loop = asyncio.get_running_loop()

    def run(*args: str) -> object:
        return _cli(redis_url, *args)

    stats = await loop.run_in_executor(None, run, "stats", queue_name)
    assert isinstance(stats, dict) and stats["waiting"] == 3 and stats["delayed"] == 1
    jobs = await loop.run_in_executor(None, run, "jobs", queue_name, "--limit", "2")
    assert isinstance(jobs, list) and [j["id"] for j in jobs] == ["1", "2"]
    assert await loop.run_in_executor(None, run, "pause", queue_name) == {"paused": True}
    stats = await loop.run_in_executor(None, run, "stats", queue_name)
    assert isinstance(stats, dict) and stats["paused"] == 3
    assert await loop.run_in_executor(None, run, "resume", queue_name) == {"paused": False}
    assert await loop.run_in_executor(None, run, "dlq", queue_name) == []
    assert await loop.run_in_executor(None, run, "retry", queue_name) == {"retried": 0}
    drained = await loop.run_in_executor(None, run, "drain", queue_name, "--include-delayed")
    assert drained == {"removed": 4}


async def test_group_commands(redis_url: str, queue_name: str) -> None:
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_jobs([("t", i, {"group": "acme"}) for i in range(2)])
    loop = asyncio.get_running_loop()

    def run(*args: str) -> object:
        return _cli(redis_url, *args)

    shown = await loop.run_in_executor(
        None, run, "group", queue_name, "acme", "--pause", "--concurrency", "2", "--rate", "5/1000"
    )
    assert shown == {
        "group": "acme",
        "waiting": 2,
        "active": 0,
        "paused": True,
        "concurrency": 2,
        "rate": {"max": 5, "duration": 1000},
        "own_limits": True,
        "rate_limited_until": None,
    }
    stats = await loop.run_in_executor(None, run, "stats", queue_name, "--group", "acme")
    assert isinstance(stats, dict) and stats["paused"] is True
    jobs = await loop.run_in_executor(
        None, run, "jobs", queue_name, "--status", "paused", "--group", "acme"
    )
    assert isinstance(jobs, list) and [j["group"] for j in jobs] == ["acme", "acme"]
    shown = await loop.run_in_executor(
        None, run, "group", queue_name, "acme", "--resume", "--remove-limit"
    )
    assert isinstance(shown, dict) and (shown["paused"], shown["concurrency"]) == (False, None)
    limit = await loop.run_in_executor(None, run, "concurrency", queue_name, "7")
    assert limit == {"concurrency": 7}
    limit = await loop.run_in_executor(None, run, "concurrency", queue_name, "none")
    assert limit == {"concurrency": None}


async def test_the_cli_knows_flow_parents(redis_url: str, queue_name: str) -> None:
    from jobqueue import Flow

    async with JobQueue(queue_name, redis=redis_url) as q:
        ids = await q.add_flow(Flow("t", None, [Flow("t", 1), Flow("t", 2)]))
    loop = asyncio.get_running_loop()
    stats = await loop.run_in_executor(None, _cli, redis_url, "stats", queue_name)
    assert isinstance(stats, dict) and (stats["waiting"], stats["waiting_children"]) == (2, 1)
    jobs = await loop.run_in_executor(
        None, _cli, redis_url, "jobs", queue_name, "--status", "waiting_children"
    )
    assert isinstance(jobs, list) and [(j["id"], j["status"]) for j in jobs] == [
        (ids.id, JobStatus.WAITING_CHILDREN.value)
    ]
