"""The workers registry: live workers with their heartbeats' descriptions, a dead one
dropping out, and the ``jobqueue workers`` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from jobqueue import JobQueue, JobStatus
from jobqueue.workers import VERSION

from .helpers import eventually

#: Heartbeats every 200 ms: a worker counts as alive 1.4 s past its last one.
FAST = {"lock_duration": 1000, "lock_renew_time": 200}

APP = """
from jobqueue import JobQueue

queue = JobQueue({name!r}, redis={url!r}, settings={settings!r})

@queue.processor("ok")
async def ok(job):
    return 1
"""


async def test_a_worker_lists_itself_with_its_description_and_leaves_at_close(
    redis_url: str, queue_name: str
) -> None:
    q = JobQueue(queue_name, redis=redis_url, settings=FAST, worker={"concurrency": 3})
    q.process("ok", lambda job: 1)
    q.process("bad", lambda job: 1 / 0)
    async with JobQueue(queue_name, redis=redis_url) as admin:
        assert await admin.get_workers() == []
        async with q:
            await q.start_worker()
            ok = await q.add_job("ok", None)
            bad = await q.add_job("bad", None, attempts=1)
            for job_id in (ok, bad):
                await q.wait_for(job_id, 10_000)

            async def counted() -> bool:
                workers = await admin.get_workers()
                return len(workers) == 1 and workers[0].processed == 2

            await eventually(counted)
            (worker,) = await admin.get_workers()
            assert worker.id == q.worker_id
            assert worker.queue == queue_name
            assert worker.host == socket.gethostname() and worker.pid == os.getpid()
            assert worker.concurrency == 3 and worker.running == 0
            assert (worker.processed, worker.failed) == (2, 1)
            assert worker.version == VERSION and worker.started_at > 0
            assert worker.heartbeat_until > 0
        assert await admin.get_workers() == []  # closing left the registry at once


async def test_a_killed_worker_drops_out_within_a_few_heartbeats(
    tmp_path: Path, redis_url: str, queue_name: str
) -> None:
    (tmp_path / "reg_app.py").write_text(
        textwrap.dedent(APP.format(name=queue_name, url=redis_url, settings=FAST))
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "jobqueue.cli", "worker", "reg_app:queue"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        async with JobQueue(queue_name, redis=redis_url, settings=FAST) as q:

            async def both() -> bool:
                return len(await q.get_workers()) == 2

            await eventually(both, timeout=30)
            assert {w.pid for w in await q.get_workers()} == {p.pid for p in processes}
            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait()
            # The survivor's heartbeat removes the dead one once its deadline passed
            # (2 renew periods + 1 s); 10 s is a generous bound.

            async def one_left() -> bool:
                return [w.pid for w in await q.get_workers()] == [processes[1].pid]

            await eventually(one_left, timeout=10)
            # Its description went with it.
            job = await q.add_job("ok", None)
            assert (await q.wait_for(job, 10_000)).status is JobStatus.COMPLETED
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)


def _cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "jobqueue.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout


async def test_the_workers_command_prints_a_table_or_json(redis_url: str, queue_name: str) -> None:
    q = JobQueue(queue_name, redis=redis_url, settings=FAST)
    async with q:
        await q.start_worker()
        loop = asyncio.get_running_loop()
        # Global options after the command, as well as before it.
        table = await loop.run_in_executor(None, _cli, "workers", queue_name, "--redis", redis_url)
        header, row = table.splitlines()
        assert header.split()[:5] == ["ID", "HOST", "PID", "CONCURRENCY", "RUNNING"]
        assert row.split()[:3] == [q.worker_id or "", socket.gethostname(), str(os.getpid())]
        raw = await loop.run_in_executor(
            None, _cli, "--redis", redis_url, "workers", queue_name, "--json"
        )
        (listed,) = json.loads(raw)
        assert listed["id"] == q.worker_id and listed["pid"] == os.getpid()
    empty = await loop.run_in_executor(None, _cli, "workers", queue_name, "--redis", redis_url)
    assert empty.strip() == "(none)"


async def test_tables_and_options_after_the_command(redis_url: str, queue_name: str) -> None:
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_jobs([("t", 1), ("t", 2)])
        await q.schedule_every("tick", None, 60_000, schedule_id="every-minute")
    loop = asyncio.get_running_loop()
    stats = await loop.run_in_executor(None, _cli, "stats", queue_name, "--redis", redis_url)
    lines = dict(line.split(None, 1) for line in stats.splitlines() if line and ":" not in line)
    assert lines["waiting"] == "2" and lines["active"] == "0"
    jobs = await loop.run_in_executor(None, _cli, "jobs", queue_name, "--redis", redis_url)
    assert [line.split()[:3] for line in jobs.splitlines()] == [
        ["ID", "NAME", "STATUS"],
        ["1", "t", "waiting"],
        ["2", "t", "waiting"],
    ]
    schedules = await loop.run_in_executor(
        None, _cli, "schedules", queue_name, "--redis", redis_url
    )
    assert schedules.splitlines()[1].split()[:5] == ["every-minute", "tick", "every", "60000", "ms"]
    assert await loop.run_in_executor(None, _cli, "dlq", queue_name, "--redis", redis_url) == (
        "(none)\n"
    )


def test_every_command_has_a_help_line() -> None:
    from jobqueue.cli import parser

    p = parser()
    (sub,) = [a for a in p._actions if a.dest == "command"]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}  # type: ignore[attr-defined]
    assert set(helps) >= {"worker", "stats", "pause", "resume", "workers", "schedules", "jobs"}
    assert all(helps.values()), helps
