"""Partitioned queues on one redis-server (partitions work there too: each is a queue of
its own hash tag). The same checks run on a cluster in tests/test_partitions_cluster.py.
Real servers only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from jobqueue import JobQueue, JobStatus, QueueEvent, QueueEvents, QueueSettings
from jobqueue import sync as jq_sync
from jobqueue.cli import admin, parser
from jobqueue.errors import InvalidOptionError
from jobqueue.fleet import JobEvent
from jobqueue.job import Job
from jobqueue.partitions import Router, partition_name
from jobqueue.testing import RedisServer, redis_command

from . import partition_cases as cases
from .helpers import eventually, plant_stalled_job, redis_time_ms, script_calls


def _keys(server: RedisServer) -> list[str]:
    """Every key but the index of queue names (which lists the queue once, by name)."""
    reply = redis_command(server.port, "KEYS", "*")
    assert isinstance(reply, list)
    return sorted(key.decode() for key in reply if key != b"jq:queues")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"partitions": 0}, "partitions"),
        ({"partitions": 1025}, "partitions"),
        ({"partitions": True}, "partitions"),
        ({"partitions": "3"}, "partitions"),
    ],
)
def test_bad_partition_settings_are_refused(
    redis_server: RedisServer, redis_url: str, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidOptionError) as refused:
        JobQueue("q", redis=redis_url, **kwargs)
    assert refused.value.field == field
    assert _keys(redis_server) == []


@pytest.mark.parametrize("name", ["q#0", "q#12", "a#b#3", "#7"])
def test_a_queue_named_like_a_partition_is_refused(
    redis_server: RedisServer, redis_url: str, name: str
) -> None:
    # `<name>#<digits>` is the hash tag of partition <digits> of queue <name>.
    for partitions in (1, 3):
        with pytest.raises(InvalidOptionError, match="partitioned queue's") as refused:
            JobQueue(name, redis=redis_url, partitions=partitions)
        assert refused.value.field == "name"
        with pytest.raises(InvalidOptionError, match="partitioned queue's"):
            QueueEvents(name, redis=redis_url)
        with pytest.raises(InvalidOptionError, match="partitioned queue's"):
            jq_sync.JobQueue(name, redis=redis_url)
    assert _keys(redis_server) == []


@pytest.mark.parametrize("name", ["q#", "q#1a", "q1", "#", "q#-1"])
async def test_other_names_with_a_hash_sign_are_queues(make_queue: cases.Make, name: str) -> None:
    queue = make_queue(name=name)
    assert await queue.add_job("x", 1) == "1"  # a plain queue's id, no partition's
    job = await queue.get_job_status("1")
    assert job is not None and job.status == JobStatus.WAITING


async def test_bad_ids_are_refused_and_write_nothing(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    queue = make_queue(name="bad", partitions=3)
    with pytest.raises(InvalidOptionError, match="generated ids") as refused:
        await queue.add_job("x", 1, job_id="2.abc")
    assert refused.value.field == "job_id"
    group_id = next(
        f"o{i}" for i in range(100) if Router(3).of_key(f"o{i}") != Router(3).of_key("g")
    )
    with pytest.raises(InvalidOptionError, match="another partition") as refused:
        await queue.add_jobs([("x", 1), ("x", 2, {"job_id": group_id, "group": "g"})])
    assert refused.value.field == "jobs[1].job_id"
    assert _keys(redis_server) == []


async def test_an_unpartitioned_queue_keeps_its_keys(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    queue = make_queue(name="plain")
    assert await queue.add_job("x", 1) == "1"
    assert all(key.startswith("jq:{plain}:") for key in _keys(redis_server))
    meta = redis_command(redis_server.port, "HGETALL", "jq:{plain}:meta")
    await queue.start_worker()  # checks the count, writes no count
    assert redis_command(redis_server.port, "EXISTS", "jq:{plain}:partitions") == 0
    assert redis_command(redis_server.port, "HGETALL", "jq:{plain}:meta") == meta
    # partition_key is accepted and changes nothing on an unpartitioned queue.
    assert await queue.add_job("x", 2, partition_key="acct-7") == "2"


async def test_partitions_are_queues_of_their_own_hash_tag(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    queue = make_queue(name="parts", partitions=3)
    await queue.add_jobs([("x", i) for i in range(6)])
    tags = {key.split("}", 1)[0] + "}" for key in _keys(redis_server)}
    assert tags == {f"jq:{{{partition_name('parts', i)}}}" for i in range(3)}
    assert redis_command(redis_server.port, "GET", "jq:{parts}:partitions") == b"3"
    assert redis_command(redis_server.port, "HKEYS", "jq:{parts}:meta") == [b"version"]
    assert redis_command(redis_server.port, "SMEMBERS", "jq:queues") == [b"parts"]
    assert repr(queue) == "JobQueue('parts', prefix='jq', partitions=3)"


async def test_jobs_run_exactly_once(make_queue: cases.Make) -> None:
    await cases.run_exactly_once(make_queue, "once", 600)


@pytest.mark.parametrize("case", cases.CASES)
async def test_partitioned_queue(make_queue: cases.Make, case: cases.Case) -> None:
    await case(make_queue, "parted")


async def test_fleet_events_come_from_every_partition(
    redis_url: str, make_queue: cases.Make
) -> None:
    queue = make_queue(name="fleet", partitions=3)
    seen: list[JobEvent] = []
    async with QueueEvents("fleet", redis=redis_url, partitions=3) as events:
        events.on(QueueEvent.JOB_ADDED, seen.append)
        await events.start()
        ids = await queue.add_jobs([("x", i) for i in range(9)])

        async def all_seen() -> bool:
            return {e.id for e in seen} == set(ids)

        await eventually(all_seen)
    unpartitioned = QueueEvents("fleet", redis=redis_url)
    with pytest.raises(InvalidOptionError, match="stored with 3"):
        await unpartitioned.start()
    await unpartitioned.close()


async def test_scheduled_jobs_run_in_partition_zero(make_queue: cases.Make) -> None:
    queue = make_queue(name="sched", partitions=3)
    ran: list[str] = []

    async def tick(job: Job[None]) -> None:
        ran.append(job.id)

    queue.process("tick", tick)
    await queue.start_worker()
    await queue.schedule_every("tick", None, 100)

    async def ticked() -> bool:
        return bool(ran)

    await eventually(ticked)
    assert Router(3).of_id(ran[0]) == 0 and ran[0].isdigit()
    assert await queue.get_job_status(ran[0]) is not None


def test_the_sync_facade_routes_jobs(redis_url: str) -> None:
    with jq_sync.JobQueue("syncparts", redis=redis_url, partitions=3) as queue:
        ids = [queue.add_job("x", i) for i in range(6)]
        assert {Router(3).of_id(i) for i in ids} == {0, 1, 2}
        assert all(queue.get_job_status(i) is not None for i in ids)
        assert queue.get_stats().waiting == 6


async def test_the_cli_finds_the_stored_count(redis_url: str, make_queue: cases.Make) -> None:
    await make_queue(name="cliparts", partitions=3).add_jobs([("x", i) for i in range(7)])
    stats = await admin(parser().parse_args(["--redis", redis_url, "stats", "cliparts"]))
    assert stats["waiting"] == 7
    with pytest.raises(InvalidOptionError, match="stored with 3"):
        await admin(
            parser().parse_args(["--redis", redis_url, "--partitions", "2", "stats", "cliparts"])
        )


def _info(server: RedisServer, field: str, section: str) -> int:
    reply = redis_command(server.port, "INFO", section)
    assert isinstance(reply, bytes)
    for line in reply.decode().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split(":", 1)[1].split(",")[0].removeprefix("calls="))
    return 0


async def test_one_fetch_loop_and_one_blocking_wait_serve_every_partition(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    """A worker waits on one blocking call for all partitions, is woken for a job of any
    partition (well before its idle sweep, 5 s), and fetches from the woken partition
    only: no round trip per empty partition."""
    queue = make_queue(name="loop", partitions=3, worker={"concurrency": 4, "scheduler": False})
    router = Router(3)
    keys = {router.of_key(f"k{i}"): f"k{i}" for i in range(50)}
    assert sorted(keys) == [0, 1, 2]
    queue.process("x", lambda job: job.data)
    await queue.start_worker()

    async def one_blocked() -> bool:
        return _info(redis_server, "blocked_clients", "clients") == 1

    completed: asyncio.Queue[str] = asyncio.Queue()
    queue.on(QueueEvent.JOB_COMPLETED, lambda job: completed.put_nowait(job.id))
    await eventually(one_blocked)

    async def run_one(part: int, key: str) -> None:
        started = time.monotonic()
        job_id = await queue.add_job("x", part, partition_key=key)
        assert await asyncio.wait_for(completed.get(), 3) == job_id
        assert time.monotonic() - started < 1.0  # woken: not found by the 5 s idle sweep
        await eventually(one_blocked)

    for part, key in sorted(keys.items()):  # warm-up: the scripts get loaded
        await run_one(part, key)
    scripts = script_calls(redis_server.port)
    rounds = 3
    for _ in range(rounds):
        for part, key in sorted(keys.items()):
            await run_one(part, key)
    # Per job: its add, one fetch (which takes it and finds its partition empty) and its
    # ack, and for partitions 1 and 2 the producer's wake call; a fetch of each empty
    # partition would add two more per job.
    calls = script_calls(redis_server.port) - scripts
    assert calls <= rounds * (3 * 3 + 2) + 2, calls


async def test_delayed_jobs_and_retries_of_any_partition_run_on_time(
    make_queue: cases.Make,
) -> None:
    queue = make_queue(name="due", partitions=3)
    router = Router(3)
    key = next(f"k{i}" for i in range(50) if router.of_key(f"k{i}") == 2)
    tries: list[float] = []

    def flaky(job: Job[int]) -> int:
        tries.append(time.monotonic())
        if len(tries) == 1:
            raise RuntimeError("once")
        return job.data

    queue.process("flaky", flaky)
    await queue.start_worker()
    await asyncio.sleep(0.3)  # idle: every partition visited and left
    started = time.monotonic()
    job_id = await queue.add_job(
        "flaky",
        7,
        partition_key=key,
        delay=600,
        attempts=2,
        backoff={"type": "fixed", "delay": 700},
    )
    info = await queue.wait_for(job_id, timeout=5_000)
    assert info.status is JobStatus.COMPLETED and info.return_value == 7
    assert 0.55 < tries[0] - started < 1.5
    assert 0.65 < tries[1] - tries[0] < 1.6


# -- Wake-ups of partitions > 0: each job must run well before the 5 s idle sweep. --------


def _key_of(router: Router, part: int) -> str:
    """A partition key that routes to partition ``part``."""
    return next(f"k{i}" for i in range(1000) if router.of_key(f"k{i}") == part)


def _blocked(server: RedisServer, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return _info(server, "blocked_clients", "clients") == count

    return check


async def test_a_saturated_worker_still_serves_a_partition_that_went_empty(
    make_queue: cases.Make,
) -> None:
    """A worker kept busy by one partition's backlog (6 s of work) fetches from a
    partition that went empty and got a job within its short sweep (1 s), not the 5 s one
    nor after the backlog."""
    router = Router(3)
    queue = make_queue(name="fair", partitions=3, worker={"concurrency": 1})
    first = asyncio.Event()

    async def slow(job: Job[int]) -> int:
        first.set()
        await asyncio.sleep(0.02)
        return job.data

    queue.process("slow", slow)
    queue.process("x", lambda job: job.data)
    await queue.add_jobs([("slow", i, {"partition_key": _key_of(router, 1)}) for i in range(300)])
    await queue.start_worker()
    await asyncio.wait_for(first.wait(), 5)
    await asyncio.sleep(0.2)  # partitions 0 and 2 were fetched, found empty and left
    started = time.monotonic()
    job_id = await queue.add_job("x", 7, partition_key=_key_of(router, 2))
    info = await queue.wait_for(job_id, timeout=10_000)
    assert info.status is JobStatus.COMPLETED and info.return_value == 7
    assert time.monotonic() - started < 2.5
    assert (await queue.get_stats()).waiting > 0  # the backlog was still there


async def test_a_wake_up_a_busy_worker_took_goes_on_to_an_idle_one(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    """Worker A, busy with a job it fetched while its blocking wait was pending, pops the
    wake-up of a new job; it has no free slot, so it pushes the wake-up back and the
    idle worker B (blocked after A) runs the job at once."""
    router = Router(3)
    producer = make_queue(name="handoff", partitions=3)
    busy = make_queue(name="handoff", partitions=3, worker={"concurrency": 1, "scheduler": False})
    idle = make_queue(name="handoff", partitions=3, worker={"concurrency": 1, "scheduler": False})
    held, release = asyncio.Event(), asyncio.Event()
    ran_by: dict[str, str] = {}

    async def hold(job: Job[None]) -> None:
        held.set()
        await release.wait()

    busy.process("hold", hold)
    busy.process("x", lambda job: ran_by.setdefault(job.id, "busy"))
    idle.process("x", lambda job: ran_by.setdefault(job.id, "idle"))
    await busy.start_worker()
    await eventually(_blocked(redis_server, 1))
    # Due in 400 ms: A takes it when it comes due, with its blocking wait still pending.
    await producer.add_job("hold", None, partition_key=_key_of(router, 1), delay=400)
    await asyncio.wait_for(held.wait(), 5)
    await eventually(_blocked(redis_server, 1))
    await idle.start_worker()
    await eventually(_blocked(redis_server, 2))
    started = time.monotonic()
    job_id = await producer.add_job("x", 1, partition_key=_key_of(router, 2))
    info = await producer.wait_for(job_id, timeout=10_000)
    assert info.status is JobStatus.COMPLETED and ran_by[job_id] == "idle"
    assert time.monotonic() - started < 1.5
    release.set()


async def test_a_job_given_back_wakes_the_next_free_worker(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    """Worker Y fetches a long job of partition 2 and, prefetched behind it, a short one;
    with no free slot it gives the short one back after the keep bound (release.lua) and
    pushes a wake-up for partition 2. Worker X, busy meanwhile with a job of partition 1,
    takes that wake-up once its job ends: the short job starts at once, not after the
    idle sweep (5 s)."""
    router = Router(3)
    producer = make_queue(name="giveback", partitions=3)
    workers = [
        make_queue(name="giveback", partitions=3, worker={"concurrency": 1, "scheduler": False})
        for _ in range(2)
    ]
    held = {1: asyncio.Event(), 2: asyncio.Event()}
    release = {1: asyncio.Event(), 2: asyncio.Event()}
    started: dict[str, float] = {}

    async def long(job: Job[int]) -> None:
        held[job.data].set()
        await asyncio.wait_for(release[job.data].wait(), 10)

    async def short(job: Job[None]) -> None:
        started[job.id] = time.monotonic()

    for worker in workers:
        worker.process("long", long)
        worker.process("short", short)
        await worker.start_worker()
    await eventually(_blocked(redis_server, 2))
    await producer.add_job("long", 1, partition_key=_key_of(router, 1))
    await asyncio.wait_for(held[1].wait(), 5)
    await eventually(_blocked(redis_server, 1))  # Y waits again; X is busy
    key = _key_of(router, 2)
    ids = await producer.add_jobs(
        [("long", 2, {"partition_key": key}), ("short", None, {"partition_key": key})]
    )
    await asyncio.wait_for(held[2].wait(), 5)

    async def given_back() -> bool:
        info = await producer.get_job_status(ids[1])
        return info is not None and info.status is JobStatus.WAITING

    await eventually(given_back)
    freed_at = time.monotonic()
    release[1].set()
    info = await producer.wait_for(ids[1], timeout=10_000)
    assert info.status is JobStatus.COMPLETED
    assert started[ids[1]] - freed_at < 2.5
    release[2].set()


async def test_resume_and_retry_wake_an_idle_worker(make_queue: cases.Make) -> None:
    router = Router(3)
    queue = make_queue(
        name="wakes", partitions=3, worker={"scheduler": False}, dlq={"enabled": False}
    )
    tries: list[int] = []

    def flaky(job: Job[int]) -> int:
        tries.append(job.data)
        if len(tries) == 1:
            raise RuntimeError("first try")
        return job.data

    queue.process("flaky", flaky)
    await queue.pause()
    await queue.start_worker()
    job_id = await queue.add_job("flaky", 5, partition_key=_key_of(router, 2), attempts=1)
    await asyncio.sleep(0.3)
    assert tries == []  # paused
    started = time.monotonic()
    await queue.resume()
    info = await queue.wait_for(job_id, timeout=10_000)
    assert info.status is JobStatus.FAILED and time.monotonic() - started < 1.5
    started = time.monotonic()
    await queue.retry_job(job_id)

    async def completed() -> bool:
        status = await queue.get_job_status(job_id)
        return status is not None and status.status is JobStatus.COMPLETED

    await eventually(completed, timeout=10)
    assert time.monotonic() - started < 1.5 and tries == [5, 5]


async def test_group_limit_and_group_resume_wake_an_idle_worker(make_queue: cases.Make) -> None:
    router = Router(3)
    group = next(f"g{i}" for i in range(1000) if router.of_key(f"g{i}") == 2)
    queue = make_queue(name="gwakes", partitions=3, worker={"concurrency": 4, "scheduler": False})
    release = asyncio.Event()
    running: list[int] = []

    async def hold(job: Job[int]) -> int:
        running.append(job.data)
        await release.wait()
        return job.data

    queue.process("hold", hold)
    await queue.set_group_limit(group, concurrency=1)
    await queue.start_worker()
    await queue.add_jobs([("hold", i, {"group": group}) for i in range(2)])

    async def running_count(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(running) == n

        return check

    await eventually(await running_count(1))
    await asyncio.sleep(0.3)
    assert running == [0]  # the group's limit holds the second job
    started = time.monotonic()
    await queue.set_group_limit(group, concurrency=2)
    await eventually(await running_count(2), timeout=10)
    assert time.monotonic() - started < 1.5
    await queue.pause_group(group)
    await queue.set_group_limit(group, concurrency=3)
    await queue.add_job("hold", 2, group=group)
    await asyncio.sleep(0.3)
    assert running == [0, 1]  # the group is paused
    started = time.monotonic()
    await queue.resume_group(group)
    await eventually(await running_count(3), timeout=10)
    assert time.monotonic() - started < 1.5
    release.set()


async def test_stalled_jobs_of_a_partition_wake_an_idle_worker(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    """A job of partition 2 left active by a dead worker: the live worker's stalled sweep
    puts it back and wakes itself for it (not its 5 s idle sweep)."""
    router = Router(3)
    queue = make_queue(
        name="stalls",
        partitions=3,
        worker={"scheduler": False},
        settings=QueueSettings(max_stalled_interval=300),
    )
    queue.process("x", lambda job: job.data)
    await queue.start_worker()
    await eventually(_blocked(redis_server, 1))
    # Added delayed (so the idle worker does not take it), then left as a dead worker
    # leaves a job: out of the delayed set, active with its lock expired.
    job_id = await queue.add_job("x", 3, partition_key=_key_of(router, 2), delay=60_000)
    base = f"jq:{{{partition_name('stalls', 2)}}}:"
    assert redis_command(redis_server.port, "ZREM", base + "delayed:2", job_id) == 1
    started = time.monotonic()
    plant_stalled_job(redis_server.port, partition_name("stalls", 2), job_id)
    info = await queue.wait_for(job_id, timeout=10_000)
    assert info.status is JobStatus.COMPLETED and info.return_value == 3
    assert time.monotonic() - started < 2.0


async def test_slots_of_a_crashed_worker_come_back_after_its_lease(
    redis_server: RedisServer, make_queue: cases.Make
) -> None:
    """A worker that died holding all of the global concurrency (its slots in partition
    0, its lease not renewed): a live worker runs no job until the lease ends, then runs
    up to the limit at once, without waiting for its 5 s idle sweep."""
    router = Router(3)
    queue = make_queue(name="crashed", partitions=3, worker={"concurrency": 6})
    await queue.set_global_concurrency(3)
    lease_ends = redis_time_ms(redis_server.port) + 1500
    redis_command(redis_server.port, "HSET", "jq:{crashed}:slots", "dead-worker", "3")
    redis_command(
        redis_server.port, "ZADD", "jq:{crashed}:slots:lease", str(lease_ends), "dead-worker"
    )
    running, most, started_at = 0, 0, []

    async def hold(job: Job[int]) -> None:
        nonlocal running, most
        started_at.append(redis_time_ms(redis_server.port))
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.1)
        running -= 1

    queue.process("h", hold)
    await queue.start_worker()
    ids = await queue.add_jobs([("h", i, {"partition_key": _key_of(router, 1)}) for i in range(6)])
    for job_id in ids:
        info = await queue.wait_for(job_id, timeout=10_000)
        assert info.status is JobStatus.COMPLETED
    assert min(started_at) >= lease_ends  # not before the dead worker's lease ended
    assert min(started_at) - lease_ends < 1000  # at its end, not at the 5 s sweep
    assert most == 3

    async def given_back() -> bool:  # by the call after the last ack
        return redis_command(redis_server.port, "HGETALL", "jq:{crashed}:slots") == []

    await eventually(given_back)
