"""Concurrent single adds coalesce into one add_jobs call each (coalesce.py), against a
real redis-server: each caller gets its own id, its own error, and its own events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobqueue import JobQueue, QueueEvent
from jobqueue.errors import ConnectionError, InvalidOptionError, SerializationError
from jobqueue.loop_connection import LoopConnection
from jobqueue.models import JobInfo
from jobqueue.sync import JobQueue as SyncJobQueue
from jobqueue.testing import redis_command

from .helpers import Counter, eventually, not_on_a_cluster, port_of, script_calls

pytestmark = not_on_a_cluster


def loop_connection(queue: JobQueue) -> LoopConnection:
    conn = queue._producer._conn
    assert conn is not None and not conn.closed, "add_job is not on the loop's connection"
    return conn


def reset_stats(port: int) -> None:
    assert redis_command(port, "CONFIG", "RESETSTAT") == "OK"


def watch(queue: JobQueue, redis_url: str) -> tuple[list[JobInfo], int]:
    """Collect the queue's JOB_ADDED events and count script calls from now on: (the
    events, the server's port)."""
    added: list[JobInfo] = []
    queue.on(QueueEvent.JOB_ADDED, added.append)
    port = port_of(redis_url)
    reset_stats(port)
    return added, port


@pytest.fixture
def counter() -> Counter:
    return Counter()


@pytest.fixture
async def queue(redis_url: str, queue_name: str, counter: Counter) -> AsyncIterator[JobQueue]:
    async with JobQueue(queue_name, redis=redis_url, metrics=counter, telemetry=counter) as q:
        await q.add_job("warm-up", None)  # the native connection goes first
        await q.add_job("warm-up", None)  # this one opens the loop's connection
        loop_connection(q)
        counter.__init__()  # type: ignore[misc]
        yield q


async def test_500_concurrent_adds_each_get_their_own_job_in_few_calls(
    queue: JobQueue, redis_url: str, counter: Counter
) -> None:
    added, port = watch(queue, redis_url)
    ids = await asyncio.gather(*(queue.add_job("t", {"n": n}) for n in range(500)))
    calls = script_calls(port)
    assert calls <= 10, f"{calls} script calls for 500 adds"
    assert len(set(ids)) == 500
    for n, job_id in enumerate(ids):
        info = await queue.get_job_status(job_id)
        assert info is not None and info.data == {"n": n}
    # Events, metrics and spans stay per job.
    assert sorted((job.id, job.data["n"]) for job in added) == sorted(
        (job_id, n) for n, job_id in enumerate(ids)
    )
    assert counter.added == 500
    assert len(counter.spans) == 500
    assert {s.get("messaging.batch.message_count", 1) for s in counter.spans} == {1}


async def test_a_lone_add_is_written_at_once(queue: JobQueue) -> None:
    conn = loop_connection(queue)
    assert conn._channel.waiting == 0
    task = asyncio.ensure_future(queue.add_job("t", "alone"))
    await asyncio.sleep(0)  # the task runs up to waiting for its reply
    # Written in the caller's own step: in flight, no flush pending, nothing queued.
    assert conn._channel.waiting == 1
    assert conn._adds._flush_handle is None
    job_id = await task
    info = await queue.get_job_status(job_id)
    assert info is not None and info.data == "alone"


async def test_one_callers_bad_job_fails_only_that_caller(queue: JobQueue) -> None:
    bad: dict[int, Any] = {
        10: queue.add_job("t", {"bad": object()}),
        20: queue.add_job("t", {"n": 20}, priority=-1),
        30: queue.add_job("t", {"n": 30}, job_id="12"),  # custom ids may not be digits
    }
    calls = [bad.get(n) or queue.add_job("t", {"n": n}) for n in range(40)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[10], SerializationError)
    assert isinstance(results[20], InvalidOptionError)
    assert isinstance(results[30], InvalidOptionError)
    good = {n: r for n, r in enumerate(results) if n not in (10, 20, 30)}
    assert all(isinstance(r, str) for r in good.values())
    assert len(set(good.values())) == 37
    for n, job_id in good.items():
        info = await queue.get_job_status(job_id)  # type: ignore[arg-type]
        assert info is not None and info.data == {"n": n}
    assert (await queue.get_stats()).waiting == 2 + 37


async def test_duplicate_keys_among_concurrent_callers_get_the_first_job(
    queue: JobQueue, redis_url: str, counter: Counter
) -> None:
    added, port = watch(queue, redis_url)
    calls = []
    for n in range(60):
        if n % 3 == 0:
            calls.append(queue.add_job("t", {"n": n}, idempotency_key="same-key"))
        elif n % 3 == 1:
            calls.append(queue.add_job("t", {"n": n}, job_id="order-1"))
        else:
            calls.append(queue.add_job("t", {"n": n}))
    ids = await asyncio.gather(*calls)
    assert script_calls(port) < 10
    keyed = {ids[n] for n in range(0, 60, 3)}
    assert len(keyed) == 1
    info = await queue.get_job_status(keyed.pop())
    assert info is not None and info.data == {"n": 0}
    assert {ids[n] for n in range(1, 60, 3)} == {"order-1"}
    info = await queue.get_job_status("order-1")
    assert info is not None and info.data == {"n": 1}
    plain = [ids[n] for n in range(2, 60, 3)]
    assert len(set(plain)) == 20 and not set(plain) & {ids[0], "order-1"}
    # One event and one counted add per job created, not per caller.
    assert len(added) == 22 and counter.added == 22
    assert (await queue.get_stats()).waiting == 2 + 22


async def test_a_cancelled_caller_does_not_break_the_batch(queue: JobQueue) -> None:
    tasks = [asyncio.ensure_future(queue.add_job("t", {"n": n})) for n in range(50)]
    await asyncio.sleep(0)  # all have run: the first is in flight, the others queued
    conn = loop_connection(queue)
    assert conn._channel.waiting == 1 and conn._adds._flush_handle is not None
    tasks[0].cancel()  # in flight: its job is written all the same
    tasks[10].cancel()  # queued: its job is left out of the batch
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[10], asyncio.CancelledError)
    ids = [r for n, r in enumerate(results) if n not in (0, 10)]
    assert all(isinstance(r, str) for r in ids) and len(set(ids)) == 48
    waiting = await queue.get_jobs_by_status("waiting", 1000)
    datas = sorted(j.data["n"] for j in waiting if j.name == "t")
    assert datas == [n for n in range(50) if n != 10]
    assert loop_connection(queue) is conn


async def test_a_connection_killed_mid_batch_fails_exactly_its_callers(
    queue: JobQueue, redis_url: str
) -> None:
    conn = loop_connection(queue)
    port = port_of(redis_url)
    assert redis_command(port, "CLIENT", "PAUSE", "10000", "WRITE") == "OK"
    try:
        tasks = [asyncio.ensure_future(queue.add_job("t", {"n": n})) for n in range(100)]

        async def both_written() -> bool:  # the first add alone, then the other 99
            return conn._channel.waiting == 2

        await eventually(both_written)
        host, local = conn._transport.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
        redis_command(port, "CLIENT", "KILL", "ADDR", f"{host}:{local}")
    finally:
        redis_command(port, "CLIENT", "UNPAUSE")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, ConnectionError) for e in errors), errors
    assert len({id(e) for e in errors}) == len(errors)  # each caller its own exception
    for n, result in enumerate(results):  # an id means a job: never a silent loss
        if isinstance(result, str):
            info = await queue.get_job_status(result)
            assert info is not None and info.data == {"n": n}
    assert conn.closed
    later = await asyncio.gather(*(queue.add_job("t", {"later": n}) for n in range(20)))
    assert len(set(later)) == 20
    for n, job_id in enumerate(later):
        info = await queue.get_job_status(job_id)
        assert info is not None and info.data == {"later": n}


async def test_adds_queued_when_the_connection_closes_go_on_the_native_one(
    queue: JobQueue,
) -> None:
    tasks = [asyncio.ensure_future(queue.add_job("t", {"n": n})) for n in range(30)]
    await asyncio.sleep(0)  # the first is in flight, the others queued
    conn = loop_connection(queue)
    conn.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], ConnectionError)  # written: its outcome is unknown
    for n, job_id in enumerate(results[1:], 1):
        assert isinstance(job_id, str)
        info = await queue.get_job_status(job_id)
        assert info is not None and info.data == {"n": n}


def test_the_sync_facade_from_16_threads_coalesces(redis_url: str, queue_name: str) -> None:
    port = port_of(redis_url)
    with SyncJobQueue(queue_name, redis=redis_url) as queue:
        queue.add_job("warm-up", None)
        queue.add_job("warm-up", None)
        ids: dict[tuple[int, int], str] = {}
        start = threading.Barrier(16)

        def produce(t: int) -> None:
            start.wait()
            for i in range(50):
                ids[t, i] = queue.add_job("t", {"t": t, "i": i})

        reset_stats(port)
        threads = [threading.Thread(target=produce, args=(t,)) for t in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        calls = script_calls(port)
        assert len(set(ids.values())) == 800
        assert calls < 800, f"{calls} script calls for 800 adds"
        for (t, i), job_id in list(ids.items())[::37]:
            info = queue.get_job_status(job_id)
            assert info is not None and info.data == {"t": t, "i": i}
