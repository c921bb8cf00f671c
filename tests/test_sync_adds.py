"""Blocking single adds from many threads (``jobqueue.sync``) are batched in the native
core, without the event loop (``src/blocking_add.rs``), against a real redis-server: each
thread gets its own id, its own error, and its own events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from jobqueue import QueueEvent
from jobqueue.errors import (
    ConnectionError,
    InvalidOptionError,
    QueueClosedError,
    SerializationError,
)
from jobqueue.models import JobInfo
from jobqueue.sync import JobQueue
from jobqueue.testing import redis_command

from .helpers import Counter, port_of, script_calls

THREADS = 16


def in_threads(work: Callable[[int], None], threads: int = THREADS) -> None:
    """Run ``work(t)`` in ``threads`` threads released together; re-raise a failure."""
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(t: int) -> None:
        start.wait()
        try:
            work(t)
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise failures[0]


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition (never a fixed sleep) until it holds, or fail."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def counter() -> Counter:
    return Counter()


@pytest.fixture
def queue(redis_url: str, queue_name: str, counter: Counter) -> Iterator[JobQueue]:
    with JobQueue(queue_name, redis=redis_url, metrics=counter) as q:
        q.add_job("warm-up", None)  # connected
        q.get_stats()  # after the warm-up's metrics, which run on the loop
        counter.added = 0
        yield q


def test_16_threads_get_their_own_jobs_in_few_script_calls(
    queue: JobQueue, redis_url: str, counter: Counter
) -> None:
    added: list[JobInfo] = []
    queue.on(QueueEvent.JOB_ADDED, added.append)
    port = port_of(redis_url)
    assert redis_command(port, "CONFIG", "RESETSTAT") == "OK"
    ids: dict[tuple[int, int], str] = {}

    def produce(t: int) -> None:
        for i in range(50):
            ids[t, i] = queue.add_job("t", {"t": t, "i": i})

    in_threads(produce)
    calls = script_calls(port)
    assert len(set(ids.values())) == THREADS * 50
    assert calls < THREADS * 50 / 2, f"{calls} script calls for {THREADS * 50} adds"
    for (t, i), job_id in ids.items():
        info = queue.get_job_status(job_id)
        assert info is not None and info.data == {"t": t, "i": i}
    # Events and metrics stay per job; they ran on the loop before the call above did.
    assert sorted((job.id, job.data["t"], job.data["i"]) for job in added) == sorted(
        (job_id, t, i) for (t, i), job_id in ids.items()
    )
    assert counter.added == THREADS * 50


def test_a_bad_job_raises_only_in_its_own_thread(queue: JobQueue) -> None:
    bad: dict[int, Callable[[], str]] = {
        3: lambda: queue.add_job("t", {"bad": object()}),
        7: lambda: queue.add_job("t", {"n": 7}, priority=-1),
        11: lambda: queue.add_job("t", {"n": 11}, job_id="12"),  # custom ids may not be digits
        13: lambda: queue.add_job("t", {"n": 13}, no_such_option=1),
    }
    results: dict[tuple[int, int], str | BaseException] = {}

    def produce(t: int) -> None:
        for i in range(20):
            try:
                if i == 10 and t in bad:
                    results[t, i] = bad[t]()
                else:
                    results[t, i] = queue.add_job("t", {"t": t, "i": i})
            except Exception as exc:
                results[t, i] = exc

    in_threads(produce)
    assert isinstance(results[3, 10], SerializationError)
    assert isinstance(results[7, 10], InvalidOptionError)
    assert isinstance(results[11, 10], InvalidOptionError)
    assert isinstance(results[13, 10], TypeError)
    good = {key: r for key, r in results.items() if not (key[1] == 10 and key[0] in bad)}
    assert all(isinstance(r, str) for r in good.values())
    assert len(set(good.values())) == THREADS * 20 - len(bad)
    for (t, i), job_id in good.items():
        info = queue.get_job_status(job_id)  # type: ignore[arg-type]
        assert info is not None and info.data == {"t": t, "i": i}
    assert queue.get_stats().waiting == 1 + len(good)


def test_duplicate_keys_across_threads_get_the_first_job(queue: JobQueue, counter: Counter) -> None:
    added: list[JobInfo] = []
    queue.on(QueueEvent.JOB_ADDED, added.append)
    ids: dict[tuple[int, int], str] = {}
    keyed_first = threading.Event()

    def produce(t: int) -> None:
        for i in range(10):
            if t == 0 and i == 0:
                ids[t, i] = queue.add_job("t", {"first": True}, idempotency_key="same-key")
                keyed_first.set()
            elif i == 0:
                keyed_first.wait()  # the first keyed add is done: the others repeat it
                ids[t, i] = queue.add_job("t", {"t": t}, idempotency_key="same-key")
            elif i % 3 == 1:
                ids[t, i] = queue.add_job("t", {"t": t, "i": i}, job_id="order-1")
            else:
                ids[t, i] = queue.add_job("t", {"t": t, "i": i})

    in_threads(produce)
    assert {ids[t, 0] for t in range(THREADS)} == {ids[0, 0]}
    info = queue.get_job_status(ids[0, 0])
    assert info is not None and info.data == {"first": True}
    ordered = {key: job_id for key, job_id in ids.items() if key[1] % 3 == 1}
    assert set(ordered.values()) == {"order-1"}
    info = queue.get_job_status("order-1")
    assert info is not None and info.data in [{"t": t, "i": i} for t, i in ordered]
    plain = [job_id for key, job_id in ids.items() if key[1] != 0 and key[1] % 3 != 1]
    assert len(set(plain)) == len(plain) == THREADS * 6
    # One event and one counted add per job created, not per caller.
    assert queue.get_stats().waiting == 1 + 1 + 1 + len(plain)
    assert len(added) == 2 + len(plain) and counter.added == 2 + len(plain)
    assert {job.id for job in added} == {ids[0, 0], "order-1", *plain}


def test_a_killed_connection_fails_only_the_adds_in_flight(queue: JobQueue, redis_url: str) -> None:
    port = port_of(redis_url)
    results: dict[tuple[int, int], str | BaseException] = {}
    # Scripts wait while writes are paused: the first batch stays in flight, and the adds
    # of the other threads queue behind it.
    assert redis_command(port, "CLIENT", "PAUSE", "10000", "WRITE") == "OK"
    try:
        first_done = threading.Event()

        def produce(t: int) -> None:
            for i in range(30):
                try:
                    results[t, i] = queue.add_job("t", {"t": t, "i": i})
                except ConnectionError as exc:
                    results[t, i] = exc
                if i == 0:
                    first_done.wait()

        runner = threading.Thread(target=in_threads, args=(produce,))
        runner.start()
        wait_until(lambda: b"blocked_clients:1" in _info_clients(port))
        assert redis_command(port, "CLIENT", "KILL", "TYPE", "normal") not in (0, None)
    finally:
        redis_command(port, "CLIENT", "UNPAUSE")
    first_done.set()
    runner.join()
    errors = [r for r in results.values() if isinstance(r, BaseException)]
    assert errors, "no add was in flight on the killed connection"
    assert all(isinstance(e, ConnectionError) for e in errors), errors
    assert len({id(e) for e in errors}) == len(errors)  # each caller its own exception
    assert len(results) == THREADS * 30
    for (t, i), result in results.items():  # an id means a job: never a silent loss
        if isinstance(result, str):
            info = queue.get_job_status(result)
            assert info is not None and info.data == {"t": t, "i": i}
    # Every thread's later adds went through on a new connection.
    assert all(isinstance(results[t, i], str) for t in range(THREADS) for i in range(1, 30))


def _info_clients(port: int) -> bytes:
    reply = redis_command(port, "INFO", "clients")
    assert isinstance(reply, bytes)
    return reply


def test_options_and_closing_behave_as_on_the_loop(queue: JobQueue) -> None:
    job_id = queue.add_job(
        "t", {"n": 1}, {"priority": 3}, delay=60_000, job_id="custom-1", group="g"
    )
    assert job_id == "custom-1"
    info = queue.get_job_status(job_id)
    assert info is not None and info.status == "delayed" and info.priority == 3
    assert info.group == "g"
    queue.close()
    with pytest.raises(QueueClosedError):
        queue.add_job("t", {"n": 2})


def test_with_telemetry_adds_still_go_through_the_loop(redis_url: str, queue_name: str) -> None:
    spans = Counter()
    with JobQueue(queue_name, redis=redis_url, telemetry=spans) as queue:
        in_threads(lambda t: [queue.add_job("t", {"t": t}) for _ in range(5)], threads=4)
        assert queue.get_stats().waiting == 20
    assert len(spans.spans) == 20 and {s["messaging.operation.type"] for s in spans.spans} == {
        "send"
    }
