"""Redis settings that lose jobs: warned about once per connection, refused on request,
reported by health_check and `jobqueue doctor`; a Redis out of memory refuses adds
cleanly and workers recover once memory frees. Each test starts its own redis-server with
the settings it is about."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from jobqueue import (
    Job,
    JobQueue,
    QueueEvent,
    QueueSettings,
    RedisConfig,
    RedisOutOfMemoryError,
    Severity,
    UnsafeRedisError,
)
from jobqueue.errors import ConnectionError, InvalidOptionError, JobQueueError, RedisError
from jobqueue.loop_connection import LoopConnection
from jobqueue.testing import RedisServer, redis_command

from .helpers import eventually

EVICTING_POLICIES = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]


def server(*args: str) -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--maxmemory", "64mb", *args]) as started:
        yield started


@pytest.fixture
def evicting() -> Iterator[RedisServer]:
    yield from server("--maxmemory-policy", "allkeys-lru")


@pytest.fixture
def safe() -> Iterator[RedisServer]:
    yield from server("--maxmemory-policy", "noeviction", "--enable-debug-command", "yes")


class Reports:
    """What a queue reported about its Redis: QUEUE_ERROR errors and warning log lines."""

    def __init__(self, queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
        self.errors: list[BaseException] = []
        self._caplog = caplog
        caplog.set_level(logging.WARNING, logger="jobqueue")
        queue.on(QueueEvent.QUEUE_ERROR, self._on_error)

    def _on_error(self, _job: object, error: BaseException) -> None:
        self.errors.append(error)

    @property
    def unsafe(self) -> list[BaseException]:
        return [e for e in self.errors if isinstance(e, UnsafeRedisError)]

    @property
    def logged(self) -> list[str]:
        return [
            r.getMessage()
            for r in self._caplog.records
            if r.name == "jobqueue" and r.levelno == logging.WARNING
        ]


@pytest.fixture
async def queues() -> AsyncIterator[Callable[..., JobQueue]]:
    made: list[JobQueue] = []

    def make(url: str | RedisConfig, name: str = "settings", **kwargs: object) -> JobQueue:
        made.append(JobQueue(name, redis=url, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for q in made:
        await q.close(timeout=5000)


def refuse() -> QueueSettings:
    return QueueSettings(on_unsafe_redis="refuse")


def info_field(port: int, section: str, field: str) -> str:
    reply = redis_command(port, "INFO", section)
    assert isinstance(reply, bytes)
    lines = dict(line.split(":", 1) for line in reply.decode().splitlines() if ":" in line)
    return lines[field].strip()


# -- the check on connect ------------------------------------------------------------------


@pytest.mark.parametrize("policy", EVICTING_POLICIES)
async def test_an_evicting_policy_is_reported_once_per_connection(
    policy: str, queues: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    for started in server("--maxmemory-policy", policy):
        q = queues(started.url)
        reports = Reports(q, caplog)
        await q.add_job("t", None)
        await q.add_job("t", None)  # the event loop's connection opens: not a new check
        await q.add_jobs([("t", i) for i in range(3)])
        await q.get_stats()
        assert len(reports.unsafe) == 1, reports.errors
        message = str(reports.unsafe[0])
        assert f"maxmemory-policy is {policy}" in message
        assert "Fix: set maxmemory-policy to noeviction" in message
        assert len(reports.logged) == 1 and message in reports.logged[0]


async def test_noeviction_is_silent(
    safe: RedisServer, queues: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    q = queues(safe.url)
    reports = Reports(q, caplog)
    await q.add_job("t", None)
    await q.start_worker()
    assert reports.errors == [] and reports.logged == []
    report = await q.health_check()
    assert report.healthy and report.error is None


async def test_refuse_mode_raises_from_the_first_call_and_writes_nothing(
    evicting: RedisServer, queues: Callable[..., JobQueue]
) -> None:
    q = queues(evicting.url, settings=refuse())
    with pytest.raises(UnsafeRedisError, match="maxmemory-policy is allkeys-lru") as refused:
        await q.add_job("t", None)
    assert isinstance(refused.value, JobQueueError)
    assert "noeviction" in str(refused.value)
    with pytest.raises(UnsafeRedisError):
        await q.add_jobs([("t", 1), ("t", 2)])
    with pytest.raises(UnsafeRedisError):
        await q.start_worker()
    worker_only = queues(evicting.url, settings=refuse())
    with pytest.raises(UnsafeRedisError):
        await worker_only.start_worker()
    assert redis_command(evicting.port, "DBSIZE") == 0
    report = await q.health_check()
    assert not report.healthy and report.error is not None and "allkeys-lru" in report.error
    # A refused connection is not kept: once the policy is fixed, the next call works.
    redis_command(evicting.port, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    assert await q.add_job("t", None) == "1"


async def test_ignore_mode_does_not_check(
    evicting: RedisServer, queues: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    q = queues(evicting.url, settings=QueueSettings(on_unsafe_redis="ignore"))
    reports = Reports(q, caplog)

    def config_calls() -> str:  # RedisServer's own readiness check sends one
        return info_field(evicting.port, "commandstats", "cmdstat_config|get").split(",")[0]

    before = config_calls()
    await q.add_job("t", None)
    assert reports.errors == [] and reports.logged == []
    assert config_calls() == before
    report = await q.health_check()  # healthy, but it still tells
    assert report.healthy
    assert any("maxmemory-policy is allkeys-lru" in w for w in report.warnings)


def test_the_mode_is_checked() -> None:
    with pytest.raises(InvalidOptionError, match=r"settings\.on_unsafe_redis must be one of"):
        QueueSettings(on_unsafe_redis="shout")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match=r"settings\.on_unsafe_redis"):
        JobQueue("q", settings={"on_unsafe_redis": None})


ACL_USER = "jq-no-config"


@pytest.mark.parametrize("without", ["renamed", "acl"])
async def test_without_config_the_policy_is_read_from_info(
    without: str, queues: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    renamed = ["--rename-command", "CONFIG", ""] if without == "renamed" else []
    for started in server("--maxmemory-policy", "volatile-lru", *renamed):
        url = started.url
        if without == "acl":
            redis_command(
                started.port, "ACL", "SETUSER", ACL_USER, "on", ">secret", "~*", "&*", "+@all",
                "-config",
            )  # fmt: skip
            url = f"redis://{ACL_USER}:secret@{started.host}:{started.port}/0"
        q = queues(url)
        reports = Reports(q, caplog)
        await q.add_job("t", None)
        assert len(reports.unsafe) == 1
        message = str(reports.unsafe[0])
        assert "maxmemory-policy is volatile-lru" in message
        assert "read from INFO memory" in message and "CONFIG GET refused" in message
        report = await q.health_check()
        assert not report.healthy and report.error is not None
        assert "volatile-lru" in report.error


async def test_when_neither_config_nor_info_answers_it_says_so(
    queues: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    hidden = ["--rename-command", "CONFIG", "", "--rename-command", "INFO", ""]
    for started in server("--maxmemory-policy", "allkeys-lru", *hidden):
        # The ready check reads INFO too; a server without INFO needs it off.
        redis = RedisConfig(url=started.url, enable_ready_check=False)
        q = queues(redis, settings=refuse())
        reports = Reports(q, caplog)
        await q.add_job("t", None)  # an unknown policy is not refused, only reported
        assert len(reports.unsafe) == 1
        message = str(reports.unsafe[0])
        assert "maxmemory-policy is unknown" in message
        assert "neither CONFIG GET nor INFO told it" in message


async def _until_connected_again(q: JobQueue) -> None:
    """Calls until one succeeds: the first after a cut connection may fail."""

    async def answered() -> bool:
        try:
            await q.get_stats()
        except ConnectionError:
            return False
        return True

    await eventually(answered, timeout=30)


async def test_the_check_runs_again_after_a_reconnect(
    evicting: RedisServer, queues: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    q = queues(evicting.url)
    reports = Reports(q, caplog)
    await q.add_job("t", None)
    assert len(reports.unsafe) == 1
    redis_command(evicting.port, "CLIENT", "KILL", "TYPE", "normal")
    await _until_connected_again(q)
    await q.add_job("t", None)
    assert len(reports.unsafe) == 2
    assert len(reports.logged) == 2


async def test_a_workers_own_reconnect_is_reported_on_its_loop(
    evicting: RedisServer, queues: Callable[..., JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    # Without the scheduler, whose calls carry the loop, only the worker's native tasks
    # use the connection after the cut.
    q = queues(evicting.url, worker={"scheduler": False})
    reports = Reports(q, caplog)
    await q.start_worker()
    assert len(reports.unsafe) == 1
    redis_command(evicting.port, "CLIENT", "KILL", "TYPE", "normal")

    # No call of ours: the worker's fetch loop reconnects, and the report reaches the
    # handler on this loop.
    async def reported_again() -> bool:
        return len(reports.unsafe) == 2

    await eventually(reported_again, timeout=30)
    assert len(reports.logged) == 2


# -- health_check and the CLI ----------------------------------------------------------------


async def test_health_check_is_unhealthy_under_an_evicting_policy(
    evicting: RedisServer, queues: Callable[..., JobQueue]
) -> None:
    report = await queues(evicting.url).health_check()
    assert not report and report.redis_version
    assert report.error is not None and "maxmemory-policy is allkeys-lru" in report.error
    # The test servers persist nothing: a softer finding.
    assert any("does not persist at all" in w for w in report.warnings)
    assert [(f.setting, f.severity) for f in report.findings] == [
        ("maxmemory-policy", Severity.UNSAFE),
        ("save, appendonly", Severity.WARNING),
    ]


async def test_health_check_warns_of_memory_nearly_full(
    queues: Callable[..., JobQueue],
) -> None:
    for started in server("--appendonly", "yes"):
        q = queues(started.url)
        await q.add_jobs([("t", {"pad": "x" * 100}) for _ in range(500)])
        assert (await q.health_check()).warnings == []  # AOF on, memory far from full
        used = int(info_field(started.port, "memory", "used_memory"))
        redis_command(started.port, "CONFIG", "SET", "maxmemory", str(int(used / 0.95)))
        report = await q.health_check()
        assert report.healthy
        assert len(report.warnings) == 1 and report.warnings[0].startswith("maxmemory is")
        assert "of it" in report.warnings[0] and "raise maxmemory" in report.warnings[0]


def _cli(url: str, *args: str, as_json: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobqueue.cli", "--redis", url, *args]
        + (["--json"] if as_json else []),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_doctor_and_stats_print_the_findings_with_their_fixes(
    evicting: RedisServer, safe: RedisServer
) -> None:
    loop = asyncio.get_running_loop()
    doctor = await loop.run_in_executor(None, _cli, evicting.url, "doctor", "emails")
    assert doctor.returncode == 1, doctor.stderr
    printed = json.loads(doctor.stdout)
    assert printed["queue"] == "emails" and printed["healthy"] is False
    policy = printed["findings"][0]
    assert policy["setting"] == "maxmemory-policy" and policy["value"] == "allkeys-lru"
    assert policy["severity"] == "unsafe" and "noeviction" in policy["fix"]
    assert "maxmemory-policy is allkeys-lru" in doctor.stderr  # the warning on connect
    # By default, a readable table with each finding and its fix.
    table = await loop.run_in_executor(
        None, lambda: _cli(evicting.url, "doctor", "emails", as_json=False)
    )
    assert table.returncode == 1
    assert "[unsafe] maxmemory-policy is allkeys-lru" in table.stdout
    assert f"fix: {policy['fix']}" in table.stdout

    doctor = await loop.run_in_executor(None, _cli, safe.url, "doctor", "emails")
    assert doctor.returncode == 0, doctor.stderr
    printed = json.loads(doctor.stdout)
    assert printed["healthy"] is True and printed["error"] is None
    assert [f["setting"] for f in printed["findings"]] == ["save, appendonly"]

    stats = await loop.run_in_executor(None, _cli, evicting.url, "stats", "emails")
    assert stats.returncode == 0, stats.stderr
    printed = json.loads(stats.stdout)
    assert printed["waiting"] == 0
    assert printed["redis_findings"][0]["fix"] == policy["fix"]


# -- out of memory -----------------------------------------------------------------------------


def _out_of_memory(port: int) -> None:
    """Set maxmemory below what Redis uses: under noeviction, writes are then refused."""
    used = int(info_field(port, "memory", "used_memory"))
    assert redis_command(port, "CONFIG", "SET", "maxmemory", str(used // 2)) == "OK"


def _state(port: int) -> tuple[object, object]:
    return redis_command(port, "DBSIZE"), redis_command(port, "DEBUG", "DIGEST")


async def test_an_add_refused_for_memory_raises_and_writes_nothing(
    safe: RedisServer, queues: Callable[..., JobQueue]
) -> None:
    warm = queues(safe.url)
    await warm.add_jobs([("t", {"i": i}) for i in range(200)])
    await warm.add_job("t", None)  # opens the event loop's connection
    assert isinstance(warm._producer._conn, LoopConnection)
    _out_of_memory(safe.port)
    before = _state(safe.port)

    # On the event loop's connection.
    with pytest.raises(RedisOutOfMemoryError, match="the job was not added") as single:
        await warm.add_job("t", None)
    with pytest.raises(RedisOutOfMemoryError, match="the 3 jobs were not added"):
        await warm.add_jobs([("t", 1), ("t", 2), ("t", 3)])
    assert isinstance(warm._producer._conn, LoopConnection) and not warm._producer._conn.closed
    # On the native connection: a new queue's first add goes there.
    fresh = queues(safe.url)
    with pytest.raises(RedisOutOfMemoryError, match="the job was not added"):
        await fresh.add_job("t", None, idempotency_key="k")
    assert fresh._producer._conn is None

    assert _state(safe.port) == before
    message = str(single.value)
    assert isinstance(single.value, RedisError)
    assert message.startswith("Redis is out of memory (maxmemory ")
    assert "maxmemory-policy noeviction" in message and "raise maxmemory" in message
    # Once memory frees, adds work again on the same connections.
    redis_command(safe.port, "CONFIG", "SET", "maxmemory", "0")
    assert await warm.add_job("t", None)
    assert await fresh.add_job("t", None, idempotency_key="k")


async def test_workers_run_through_an_out_of_memory_redis_and_recover(
    safe: RedisServer, queues: Callable[..., JobQueue]
) -> None:
    jobs = 1000
    q = queues(safe.url)
    await q.add_jobs([("t", {"i": i}) for i in range(jobs)])
    _out_of_memory(safe.port)
    runs: Counter[str] = Counter()
    all_ran = asyncio.Event()
    refused = asyncio.Event()

    @q.processor("t")
    async def run(job: Job[dict[str, int]]) -> None:
        runs[job.id] += 1
        if len(runs) == jobs:
            all_ran.set()

    def on_error(_job: object, error: BaseException) -> None:
        if "out of memory" in str(error):
            refused.set()

    q.on(QueueEvent.QUEUE_ERROR, on_error)
    await q.start_worker()
    # Taking jobs still works: the fetch script's first write is a pop, which Redis allows
    # over maxmemory, and a script that has written runs to its end. So does writing the
    # results (the ack's first write deletes the job's run state). What adds memory with
    # its first write (renewing the locks) is refused, reported and retried.
    await asyncio.wait_for(asyncio.gather(all_ran.wait(), refused.wait()), 30)

    redis_command(safe.port, "CONFIG", "SET", "maxmemory", "0")

    async def all_completed() -> bool:
        return (await q.get_stats()).completed == jobs

    await eventually(all_completed, timeout=30)
    stats = await q.get_stats()
    assert (stats.active, stats.waiting, stats.failed, stats.dlq) == (0, 0, 0, 0)
    assert len(runs) == jobs and set(runs.values()) == {1}  # none lost, none run twice
