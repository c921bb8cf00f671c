"""Small helpers shared by the test modules."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from jobqueue import JobQueue
from jobqueue.job import Job
from jobqueue.testing import redis_command

T = TypeVar("T")


#: The Redis deployment the suite runs against (conftest.py): "single", "cluster" or
#: "sentinel", from JOBQUEUE_TEST_REDIS.
TOPOLOGY = os.environ.get("JOBQUEUE_TEST_REDIS", "single")

#: For tests of the connection the event loop drives itself, which serves single servers
#: and Sentinel's primary, not a cluster (README, "Connecting").
not_on_a_cluster = pytest.mark.skipif(
    TOPOLOGY == "cluster", reason="the event loop's own connection does not serve a cluster"
)


def port_of(url: str) -> int:
    """The port of a single server's URL. Under a cluster or sentinels (see conftest.py) the
    test calling it reads or plants keys on one server directly: it is skipped there."""
    if "+" in url.split("://", 1)[0]:
        pytest.skip("reads or plants keys on one server directly; runs on a single server")
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def script_calls(port: int) -> int:
    """Script calls so far: EVALSHA, or FCALL where the server has the scripts' library."""
    reply = redis_command(port, "INFO", "commandstats")
    assert isinstance(reply, bytes)
    found = re.findall(rb"cmdstat_(?:evalsha|fcall):calls=(\d+)", reply)
    return sum(int(n) for n in found)


def redis_time_ms(port: int) -> int:
    reply = redis_command(port, "TIME")
    assert isinstance(reply, list)
    seconds, micros = (int(x) for x in reply)  # type: ignore[call-overload]
    return seconds * 1000 + micros // 1000


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.01
) -> T:
    """Poll ``check`` until it returns something truthy (and return that), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)


def plant_active_job(
    port: int, queue_name: str, job_id: str, *, token: str, attempts: int = 1, deadline: int = 1
) -> None:
    """Leave a waiting job as a worker holding it leaves it (docs/redis-layout.md): out of
    waiting, its run state under ``token``, in the active set until ``deadline`` (ms)."""
    base = f"jq:{{{queue_name}}}:"
    redis_command(port, "LREM", base + "wait:2", "0", job_id)
    redis_command(port, "ZREM", base + "prioritized:2", job_id)
    run = "\x1f".join([token, str(attempts), "0", "", "", "0", "0", "0", ""])
    redis_command(port, "SET", f"{base}j:{job_id}:s", run)
    redis_command(port, "ZADD", base + "active:2", str(deadline), job_id)


def plant_stalled_job(port: int, queue_name: str, job_id: str, *, attempts: int = 1) -> None:
    """Leave a job as a worker that died mid-job leaves it: active, lock expired."""
    plant_active_job(port, queue_name, job_id, token="dead-worker", attempts=attempts)


#: The record's header fields by name (lib.lua's packRecord), for tests that damage one.
RECORD_FIELDS = ("opts_ref", "name", "max_attempts", "created_at", "priority", "delay")


def edit_record(
    port: int,
    queue_name: str,
    job_id: str,
    *,
    opts: str | None = None,
    data: str | None = None,
    **header: str,
) -> None:
    """Rewrite one job's record (lib.lua's packRecord): header fields by name, its data, or
    its own options text (inline in the record instead of the queue's shared one)."""
    key = f"jq:{{{queue_name}}}:j:{job_id}"
    record = redis_command(port, "GET", key)
    assert isinstance(record, bytes)
    fields = record.split(b"\x1f", 12)
    opts_len = int(fields[11])
    old_opts, old_data = fields[12][:opts_len], fields[12][opts_len:]
    for name, value in header.items():
        fields[RECORD_FIELDS.index(name)] = value.encode()
    new_opts = old_opts if opts is None else opts.encode()
    if opts is not None:
        fields[0] = b""  # the text is inline now
    new_data = old_data if data is None else data.encode()
    head = [*fields[:11], str(len(new_opts)).encode()]
    redis_command(port, "SET", key, b"\x1f".join(head) + b"\x1f" + new_opts + new_data)


class Counter:
    """A metrics adapter and a telemetry adapter that count what they are given."""

    def __init__(self) -> None:
        self.added = 0.0
        self.spans: list[dict[str, Any]] = []

    def increment(self, name: str, value: float = 1, tags: dict[str, str] | None = None) -> None:
        self.added += value

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        pass

    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> Counter:
        self.spans.append(dict(attributes or {}))
        return self

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def record_exception(self, error: BaseException) -> None:
        pass

    def end(self) -> None:
        pass


async def warm_up(queue: JobQueue, jobs: int) -> None:
    """Run `short` jobs until the workers know their jobs are short (prefetch is on)."""
    for job_id in await queue.add_jobs([("short", None) for _ in range(jobs)]):
        await queue.wait_for(job_id, 10_000)


class HeldJobs:
    """Processors for prefetch tests on ``queue``: ``short`` returns at once, ``hold`` runs
    until ``gate`` is set; ``running`` and ``most_running`` count the held ones."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.gate = asyncio.Event()
        self.running = 0
        self.most_running = 0
        queue.process("short", self._short)
        queue.process("hold", self._hold)

    async def _short(self, job: Job[None]) -> None:
        return None

    async def _hold(self, job: Job[None]) -> str:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await self.gate.wait()
        self.running -= 1
        return "done"

    async def start(self, warm_up_jobs: int) -> None:
        """Start the worker and warm it up, so that it prefetches."""
        await self.queue.start_worker()
        await warm_up(self.queue, warm_up_jobs)

    async def until_running(self, n: int) -> None:
        async def running_n() -> bool:
            return self.running == n

        await eventually(running_n)


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process (a worker stops gracefully), then wait; SIGKILL one that
    does not stop within 10 s."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
