"""The worker: processors, retries, backoff, DLQ, timeouts, locks, stalls, limits."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from jobqueue import (
    Backoff,
    DLQConfig,
    JobQueue,
    JobStatus,
    QueueEvent,
    QueueSettings,
    RateLimit,
    WorkerConfig,
)
from jobqueue.errors import InvalidOptionError, JobNotFoundError
from jobqueue.job import Job
from jobqueue.testing import redis_command

from .helpers import HeldJobs, edit_record, eventually, plant_stalled_job, port_of

FAST = {"backoff": Backoff.fixed(20)}


@pytest.fixture
async def queue(make_queue: Callable[..., JobQueue]) -> AsyncIterator[JobQueue]:
    q = make_queue()
    yield q
    await q.close(timeout=5000)


def record(queue: JobQueue, *events: QueueEvent) -> list[tuple[str, str, str | None]]:
    seen: list[tuple[str, str, str | None]] = []
    for event in events:

        def handler(
            job: Any, error: BaseException | None = None, event: QueueEvent = event
        ) -> None:
            seen.append((event.value, job.id if job else "", None if error is None else str(error)))

        queue.on(event, handler)
    return seen


async def test_async_and_sync_processors_complete(queue: JobQueue) -> None:
    @queue.processor("double")
    async def double(job: Job[dict[str, int]]) -> dict[str, int]:
        return {"result": job.data["n"] * 2}

    threads: list[str] = []

    def shout(job: Job[str]) -> str:
        threads.append(threading.current_thread().name)
        return job.data.upper()

    queue.process("shout", shout)
    seen = record(queue, QueueEvent.JOB_STARTED, QueueEvent.JOB_COMPLETED)
    await queue.start_worker()
    a = await queue.add_job("double", {"n": 21})
    b = await queue.add_job("shout", "hi")
    done_a, done_b = await queue.wait_for(a, 10_000), await queue.wait_for(b, 10_000)
    assert (done_a.status, done_a.return_value, done_a.attempts) == (
        JobStatus.COMPLETED,
        {"result": 42},
        1,
    )
    assert (done_b.return_value, done_b.attempts) == ("HI", 1)
    assert done_a.processed_at is not None and done_a.finished_at is not None
    assert done_a.created_at <= done_a.processed_at <= done_a.finished_at
    assert threads and threads[0] != threading.main_thread().name
    await eventually(lambda: _true(len(seen) == 4))
    assert sorted(seen) == sorted(
        [
            ("job-started", a, None),
            ("job-completed", a, None),
            ("job-started", b, None),
            ("job-completed", b, None),
        ]
    )


async def _true(value: bool) -> bool:
    return value


async def test_progress_and_logs(queue: JobQueue) -> None:
    progress: list[Any] = []

    @queue.processor("long")
    async def long(job: Job[None]) -> None:
        await job.log("step 1")
        await job.update_progress(50)
        await job.update_progress({"stage": "upload"})
        await job.log("step 2")

    queue.on(QueueEvent.JOB_PROGRESS, lambda job: progress.append(job.progress))
    await queue.start_worker()
    info = await queue.wait_for(await queue.add_job("long", None), 10_000)
    assert info.logs == ["step 1", "step 2"]
    assert info.progress == {"stage": "upload"}
    assert progress == [50, {"stage": "upload"}]


async def test_bad_progress_is_refused(queue: JobQueue) -> None:
    errors: list[str] = []

    @queue.processor("p")
    async def p(job: Job[None]) -> None:
        for bad in (150, -1, "half", float("nan")):
            try:
                await job.update_progress(bad)  # type: ignore[arg-type]
            except InvalidOptionError as exc:
                errors.append(exc.field)

    await queue.start_worker()
    await queue.wait_for(await queue.add_job("p", None), 10_000)
    assert errors == ["progress"] * 4


async def test_unknown_job_name_fails_with_a_clear_reason(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(dlq=DLQConfig(enabled=False))
    await queue.start_worker()
    info = await queue.wait_for(
        await queue.add_job("nobody-handles-this", None, attempts=2), 10_000
    )
    assert info.status is JobStatus.FAILED
    assert info.failed_reason is not None and "'nobody-handles-this'" in info.failed_reason
    assert info.attempts == 2


async def test_retries_then_dlq_with_events_and_notification(
    make_queue: Callable[..., JobQueue],
) -> None:
    notified: list[str] = []

    async def alert(job: Any) -> None:
        notified.append(job.id)

    queue = make_queue(dlq=DLQConfig(notification_handler=alert))
    runs: list[int] = []

    @queue.processor("flaky")
    def flaky(job: Job[None]) -> None:
        runs.append(job.attempts_made)
        raise ValueError(f"failure {job.attempts_made}")

    seen = record(queue, QueueEvent.JOB_RETRYING, QueueEvent.JOB_FAILED, QueueEvent.JOB_DLQ)
    await queue.start_worker()
    job_id = await queue.add_job("flaky", None, attempts=3)
    info = await queue.wait_for(job_id, 10_000)
    assert info.status is JobStatus.DLQ
    assert info.attempts == 3
    assert info.failed_reason == "ValueError: failure 3"
    assert info.stacktrace and "ValueError" in info.stacktrace
    assert runs == [1, 2, 3]
    await eventually(lambda: _true(len(notified) == 1))
    assert seen == [
        ("job-retrying", job_id, "failure 1"),
        ("job-retrying", job_id, "failure 2"),
        ("job-failed", job_id, "failure 3"),
        ("job-dlq", job_id, "failure 3"),
    ]
    stats = await queue.get_stats()
    assert (stats.dlq, stats.failed) == (1, 0)
    assert [j.id for j in await queue.get_dlq_jobs()] == [job_id]


async def test_attempts_count_the_successful_one(queue: JobQueue) -> None:
    @queue.processor("third-time-lucky")
    async def lucky(job: Job[None]) -> str:
        if job.attempts_made < 3:
            raise RuntimeError("not yet")
        return "ok"

    await queue.start_worker()
    info = await queue.wait_for(await queue.add_job("third-time-lucky", None, attempts=5), 10_000)
    assert (info.status, info.attempts, info.return_value) == (JobStatus.COMPLETED, 3, "ok")


async def test_exponential_backoff_spaces_the_retries(queue: JobQueue) -> None:
    starts: list[int] = []

    @queue.processor("slow-retry")
    async def slow(job: Job[None]) -> None:
        starts.append(job.processed_at)
        raise RuntimeError("again")

    await queue.start_worker()
    job_id = await queue.add_job(
        "slow-retry", None, attempts=3, backoff=Backoff.exponential(100, max_delay=1000)
    )
    await queue.wait_for(job_id, 10_000)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 100 and gaps[1] >= 200  # Redis-clock times: 1x then 2x the delay


async def test_dlq_disabled_keeps_the_job_failed(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(dlq=DLQConfig(enabled=False))
    queue.process("bad", lambda job: 1 / 0)
    await queue.start_worker()
    info = await queue.wait_for(await queue.add_job("bad", None, attempts=1), 10_000)
    assert info.status is JobStatus.FAILED
    assert "ZeroDivisionError" in (info.failed_reason or "")
    assert (await queue.get_stats()).failed == 1


async def test_non_json_return_value_fails_the_attempt(queue: JobQueue) -> None:
    queue.process("returns-a-set", lambda job: {1, 2})
    await queue.start_worker()
    info = await queue.wait_for(await queue.add_job("returns-a-set", None, attempts=1), 10_000)
    assert info.status is JobStatus.DLQ
    assert "return value is not JSON" in (info.failed_reason or "")


async def test_timeout_cancels_an_async_processor(queue: JobQueue) -> None:
    cancelled = asyncio.Event()

    @queue.processor("hang")
    async def hang(job: Job[None]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await queue.start_worker()
    info = await queue.wait_for(await queue.add_job("hang", None, attempts=1, timeout=100), 10_000)
    assert info.status is JobStatus.DLQ
    assert "timed out after 100 ms" in (info.failed_reason or "")
    assert cancelled.is_set()


async def test_timeout_abandons_a_sync_processor_and_ignores_its_result(queue: JobQueue) -> None:
    release = threading.Event()

    def stuck(job: Job[None]) -> str:
        release.wait(10)
        return "too late"

    queue.process("stuck", stuck)
    await queue.start_worker()
    job_id = await queue.add_job("stuck", None, attempts=1, timeout=100)
    info = await queue.wait_for(job_id, 10_000)
    release.set()
    assert info.status is JobStatus.DLQ and "timed out" in (info.failed_reason or "")
    later = await queue.get_job_status(job_id)
    assert later is not None and later.return_value is None


async def test_priority_order_with_one_slot(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=1))
    order: list[int] = []

    @queue.processor("p")
    async def p(job: Job[int]) -> None:
        order.append(job.data)

    priorities = [3, 0, 1, 3, 0, 2]
    await queue.add_jobs([("p", i, {"priority": pr}) for i, pr in enumerate(priorities)])
    await queue.start_worker()
    await eventually(lambda: _true(len(order) == len(priorities)))
    assert order == sorted(range(len(priorities)), key=lambda i: (priorities[i], i))


async def test_delayed_job_runs_at_its_due_time(queue: JobQueue) -> None:
    queue.process("later", lambda job: None)
    await queue.start_worker()
    info = await queue.wait_for(await queue.add_job("later", None, delay=300), 10_000)
    assert info.processed_at is not None
    assert info.processed_at - info.created_at >= 300


async def test_delayed_jobs_due_together_all_run_and_a_later_one_waits(queue: JobQueue) -> None:
    queue.process("later", lambda job: None)
    due = await queue.add_jobs([("later", i, {"delay": 200}) for i in range(5)])
    waiting = await queue.add_job("later", None, delay=600_000)
    await queue.start_worker()
    for job_id in due:
        assert (await queue.wait_for(job_id, 10_000)).status is JobStatus.COMPLETED
    stats = await queue.get_stats()
    assert (stats.delayed, stats.waiting, stats.completed) == (1, 0, 5)
    info = await queue.get_job_status(waiting)
    assert info is not None and info.status is JobStatus.DELAYED


async def test_idle_worker_wakes_when_a_job_arrives(queue: JobQueue) -> None:
    queue.process("ping", lambda job: "pong")
    await queue.start_worker()
    await asyncio.sleep(0.3)  # let the worker go idle and block on Redis
    started = time.monotonic()
    await queue.wait_for(await queue.add_job("ping", None), 10_000)
    # The worker blocks up to 5 s when idle; being woken by the add is much faster.
    assert time.monotonic() - started < 2


async def test_a_worker_that_empties_the_queue_waits_for_a_wake_up_without_asking_again(
    queue: JobQueue, redis_url: str
) -> None:
    finished = asyncio.Event()
    queue.process("one", lambda job: None)
    queue.on(QueueEvent.JOB_COMPLETED, lambda job: finished.set())
    await queue.start_worker()
    await asyncio.sleep(0.3)  # idle: blocked on the marker
    port = port_of(redis_url)
    redis_command(port, "CONFIG", "RESETSTAT")
    jobs = 20
    for i in range(jobs):
        finished.clear()
        await queue.add_job("one", i)
        await asyncio.wait_for(finished.wait(), 10)
    stats = redis_command(port, "INFO", "commandstats")
    assert isinstance(stats, bytes)
    calls = re.findall(rb"cmdstat_(?:evalsha|fcall):calls=(\d+)", stats)
    assert calls
    # Per job: the add, one fetch (it takes the last job, so the worker blocks on the
    # marker next instead of fetching again) and the ack; a few more for lock renewals.
    assert sum(int(n) for n in calls) <= 3 * jobs + 5


async def test_pause_and_resume(queue: JobQueue) -> None:
    ran: list[str] = []
    queue.process("p", lambda job: ran.append(job.id))
    await queue.start_worker()
    await queue.pause()
    job_id = await queue.add_job("p", None)
    await asyncio.sleep(0.3)  # asserting something does NOT happen needs a wait
    assert ran == []
    assert (await queue.get_stats()).paused == 1
    await queue.resume()
    await queue.wait_for(job_id, 10_000)
    assert ran == [job_id]


async def test_rate_limit_spreads_starts_over_windows(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=10, limiter=RateLimit(max=4, duration=500)))
    starts: list[int] = []

    @queue.processor("limited")
    async def limited(job: Job[None]) -> None:
        starts.append(job.processed_at)

    ids = await queue.add_jobs([("limited", None) for _ in range(10)])
    await queue.start_worker()
    for job_id in ids:
        await queue.wait_for(job_id, 10_000)
    starts.sort()
    assert starts[4] - starts[0] >= 450  # the 5th start waits for the next window
    assert starts[8] - starts[0] >= 950
    for i in range(len(starts) - 4):
        assert starts[i + 4] - starts[i] >= 450  # never 5 starts inside one window


async def test_stalled_job_goes_back_to_waiting_without_using_an_attempt(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    queue = make_queue(settings=QueueSettings(max_stalled_interval=100, max_stalled_count=1))
    stalled = record(queue, QueueEvent.JOB_STALLED)
    attempts: list[int] = []
    queue.process("s", lambda job: attempts.append(job.attempts_made))
    job_id = await queue.add_job("s", None)
    plant_stalled_job(port_of(redis_url), queue.name, job_id)
    await queue.start_worker()
    info = await queue.wait_for(job_id, 10_000)
    assert info.status is JobStatus.COMPLETED
    assert attempts == [1]  # the stalled run did not count
    assert ("job-stalled", job_id, None) in stalled


async def test_job_stalling_too_often_is_dead_lettered(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    queue = make_queue(settings=QueueSettings(max_stalled_interval=100, max_stalled_count=0))
    seen = record(queue, QueueEvent.JOB_STALLED, QueueEvent.JOB_FAILED, QueueEvent.JOB_DLQ)
    job_id = await queue.add_job("s", None)
    plant_stalled_job(port_of(redis_url), queue.name, job_id)
    await queue.start_worker()
    info = await queue.wait_for(job_id, 10_000)
    assert info.status is JobStatus.DLQ
    assert "stalled more than 0 times" in (info.failed_reason or "")
    await eventually(lambda: _true(len(seen) == 3))
    assert [s[0] for s in seen] == ["job-stalled", "job-failed", "job-dlq"]


async def test_job_stalling_too_often_fails_when_the_dlq_is_off(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    queue = make_queue(
        settings=QueueSettings(max_stalled_interval=100, max_stalled_count=0),
        dlq=DLQConfig(enabled=False),
    )
    job_id = await queue.add_job("s", None, remove_on_fail=5)
    plant_stalled_job(port_of(redis_url), queue.name, job_id)
    await queue.start_worker()
    info = await queue.wait_for(job_id, 10_000)
    assert info.status is JobStatus.FAILED
    assert "stalled more than 0 times" in (info.failed_reason or "")
    assert [j.id for j in await queue.get_jobs_by_status("failed")] == [job_id]


async def test_retry_job_bulk_retry_and_replay_dlq(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    fail = {"on": True}

    @queue.processor("sometimes")
    async def sometimes(job: Job[None]) -> str:
        if fail["on"]:
            raise RuntimeError("down")
        return "up"

    await queue.start_worker()
    ids = await queue.add_jobs([("sometimes", i, {"attempts": 1}) for i in range(5)])
    for job_id in ids:
        assert (await queue.wait_for(job_id, 10_000)).status is JobStatus.DLQ
    fail["on"] = False
    await queue.retry_job(ids[0])
    first = await queue.wait_for(ids[0], 10_000)
    assert (first.status, first.attempts, first.return_value) == (JobStatus.COMPLETED, 1, "up")
    assert await queue.replay_dlq(2) == 2
    assert await queue.bulk_retry(JobStatus.DLQ) == 2
    for job_id in ids:
        assert (await queue.wait_for(job_id, 10_000)).status is JobStatus.COMPLETED
    assert await queue.replay_dlq() == 0
    with pytest.raises(JobNotFoundError):
        await queue.retry_job("404")
    with pytest.raises(InvalidOptionError):
        await queue.bulk_retry(JobStatus.WAITING)


async def test_retry_job_refuses_a_job_that_did_not_fail(queue: JobQueue) -> None:
    from jobqueue.errors import InvalidStateError

    job_id = await queue.add_job("t", None)
    with pytest.raises(InvalidStateError, match="only failed"):
        await queue.retry_job(job_id)


async def test_retention_of_completed_jobs(queue: JobQueue) -> None:
    queue.process("r", lambda job: job.data)
    await queue.start_worker()
    gone = await queue.add_job("r", 0, remove_on_complete=True)
    kept = [await queue.add_job("r", i, remove_on_complete=2) for i in range(1, 5)]

    async def finished() -> bool:
        stats = await queue.get_stats()
        return stats.waiting == 0 and stats.active == 0

    await eventually(finished)
    assert await queue.get_job_status(gone) is None
    assert [j.id for j in await queue.get_jobs_by_status("completed")] == kept[::-1][:2]


async def test_one_ack_batch_applies_each_jobs_own_retention(
    make_queue: Callable[..., JobQueue],
) -> None:
    # Added before the worker starts, so the jobs are taken and acknowledged together.
    queue = make_queue(worker=WorkerConfig(concurrency=20))
    queue.process("r", lambda job: job.data)
    ids = await queue.add_jobs(
        [("r", i, {"remove_on_complete": True if i % 2 else 3}) for i in range(12)]
    )
    await queue.start_worker()

    async def finished() -> bool:
        stats = await queue.get_stats()
        return stats.waiting == 0 and stats.active == 0

    await eventually(finished)
    for gone in ids[1::2]:
        assert await queue.get_job_status(gone) is None
    kept = [j.id for j in await queue.get_jobs_by_status("completed")]
    assert len(kept) == 3 and set(kept) <= set(ids[0::2])
    await queue.close(timeout=5000)


async def test_wait_for_timeout_and_unknown_job(queue: JobQueue) -> None:
    job_id = await queue.add_job("nobody-runs-this", None)
    with pytest.raises(TimeoutError):
        await queue.wait_for(job_id, 100)
    with pytest.raises(JobNotFoundError):
        await queue.wait_for("404", 1000)


async def test_graceful_close_lets_running_jobs_finish(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    started = asyncio.Event()

    @queue.processor("slow")
    async def slow(job: Job[None]) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    await queue.start_worker()
    job_id = await queue.add_job("slow", None)
    await started.wait()
    await queue.close()
    async with JobQueue(queue.name, redis=queue.redis_config) as reader:
        info = await reader.get_job_status(job_id)
        assert info is not None
        assert (info.status, info.return_value) == (JobStatus.COMPLETED, "finished")
        assert (await reader.health_check()).workers == 0


async def test_health_check_counts_live_workers(queue: JobQueue) -> None:
    await queue.start_worker()
    assert (await eventually(lambda: queue.health_check())).workers == 1
    assert (await queue.health_check()).workers == 1


async def test_run_worker_runs_until_close(queue: JobQueue) -> None:
    queue.process("t", lambda job: "ok")
    runner = asyncio.create_task(queue.run_worker())
    info = await queue.wait_for(await queue.add_job("t", None), 10_000)
    assert info.status is JobStatus.COMPLETED
    assert not runner.done()
    await queue.close()
    await asyncio.wait_for(runner, 10)


async def test_a_job_with_unreadable_options_fails_and_frees_its_slot(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=1))
    queue.process("t", lambda job: "ran")
    broken = await queue.add_job("t", None)
    edit_record(port_of(redis_url), queue.name, broken, opts="{}")
    await queue.start_worker()
    info = await queue.wait_for(broken, 10_000)
    assert info.status is JobStatus.DLQ
    assert "unreadable" in (info.failed_reason or "")
    after = await queue.wait_for(await queue.add_job("t", None), 10_000)
    assert after.return_value == "ran"  # the only slot was given back


async def test_close_finishes_every_job_already_taken(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=10))

    @queue.processor("slow")
    async def slow(job: Job[None]) -> str:
        await asyncio.sleep(0.2)
        return "done"

    ids = await queue.add_jobs([("slow", None) for _ in range(10)])
    await queue.start_worker()

    async def all_taken() -> bool:
        return (await queue.get_stats()).active == 10

    await eventually(all_taken)
    await queue.close()  # at once: some jobs may not have reached Python yet
    async with JobQueue(queue.name, redis=queue.redis_config) as reader:
        for job_id in ids:
            info = await reader.get_job_status(job_id)
            assert info is not None and info.status is JobStatus.COMPLETED


async def test_jobs_kept_behind_held_ones_go_back_and_close_runs_what_was_taken(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=2))
    jobs = HeldJobs(queue)
    await jobs.start(20)  # the worker learns that jobs are short
    held = await queue.add_jobs([("hold", None) for _ in range(6)])

    async def only_running_ones_active() -> bool:
        stats = await queue.get_stats()
        return (stats.active, stats.waiting) == (2, 4)  # prefetched ones went back

    await jobs.until_running(2)
    await eventually(only_running_ones_active)
    assert (jobs.running, jobs.most_running) == (2, 2)
    jobs.gate.set()
    await queue.close()  # what the worker took runs before it stops
    async with JobQueue(queue.name, redis=queue.redis_config) as reader:
        statuses = [(await reader.get_job_status(i)).status for i in held]  # type: ignore[union-attr]
        assert (await reader.get_stats()).active == 0
    # The 2 held ones ran; the rest either ran too or still wait for a worker.
    assert statuses[:2] == [JobStatus.COMPLETED] * 2
    assert set(statuses[2:]) <= {JobStatus.COMPLETED, JobStatus.WAITING}
    assert jobs.most_running == 2


async def test_long_jobs_are_not_prefetched(make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=1))

    @queue.processor("long")
    async def long(job: Job[None]) -> None:
        await asyncio.sleep(0.05)  # over the 10 ms under which jobs count as short

    ids = await queue.add_jobs([("long", None) for _ in range(6)])
    await queue.start_worker()
    most_active = 0
    while (await queue.get_job_status(ids[-1])).status is not JobStatus.COMPLETED:  # type: ignore[union-attr]
        most_active = max(most_active, (await queue.get_stats()).active)
        await asyncio.sleep(0.005)
    assert most_active == 1  # a second job never sat locked behind a running one


async def test_completions_reach_listeners_and_no_job_is_kept_after_its_end(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue()
    queue.process("t", lambda job: job.data)
    await queue.start_worker()
    # Nobody listens: completions are not reported back, and no job object stays behind.
    for job_id in [await queue.add_job("t", n) for n in range(20)]:
        await queue.wait_for(job_id, 10_000)  # polls, or is woken: either way it completes

    async def nothing_kept() -> bool:
        return queue._worker is not None and not queue._worker._jobs

    await eventually(nothing_kept)
    # A handler added later gets the completions from then on.
    seen = record(queue, QueueEvent.JOB_COMPLETED)
    ids = await queue.add_jobs([("t", n) for n in range(5)])

    async def all_seen() -> bool:
        return sorted(job_id for _, job_id, _ in seen) == sorted(ids)

    await eventually(all_seen)
    await eventually(nothing_kept)


async def test_a_job_retried_at_once_and_fetched_again_by_its_worker_is_tracked(
    make_queue: Callable[..., JobQueue],
) -> None:
    # A retry without backoff is back in waiting when the ack is written; the same worker
    # may fetch it before the ack's reply is handled, which must not drop the new attempt
    # (its result was refused as lost and it ran a third time). Found in review.
    queue = make_queue(
        worker=WorkerConfig(concurrency=1),
        default_job_options={"backoff": Backoff.fixed(0), "attempts": 2},
        settings=QueueSettings(lock_duration=1500, max_stalled_interval=300),
    )
    runs: dict[str, int] = {}

    @queue.processor("flaky")
    async def flaky(job: Job[None]) -> None:
        runs[job.id] = runs.get(job.id, 0) + 1
        if runs[job.id] == 1:
            raise RuntimeError("first attempt fails")

    await queue.start_worker()
    for _ in range(300):
        (job_id,) = await queue.add_jobs([("flaky", None)])
        info = await queue.wait_for(job_id, 10_000)
        assert info.status is JobStatus.COMPLETED
    assert {job_id: n for job_id, n in runs.items() if n != 2} == {}


async def test_the_active_sets_pin_is_never_seen_as_a_job(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    """fetch keeps `active:2` a skiplist with one member that is not a job (lib.lua's
    ACTIVE_PIN, at +inf): counts, listings, the global concurrency and clear skip it."""
    queue = make_queue(worker=WorkerConfig(concurrency=3))
    await queue.set_global_concurrency(3)
    jobs = HeldJobs(queue)
    await queue.start_worker()
    held = await queue.add_jobs([("hold", None) for _ in range(5)])
    await jobs.until_running(3)
    port, active = port_of(redis_url), f"jq:{{{queue.name}}}:active:2"
    assert redis_command(port, "OBJECT", "ENCODING", active) == b"skiplist"
    assert redis_command(port, "ZCARD", active) == 4  # 3 jobs and the pin
    assert (await queue.get_stats()).active == 3
    listed = await queue.get_jobs_by_status(JobStatus.ACTIVE)
    assert sorted(j.id for j in listed) == sorted(held[:3])
    jobs.gate.set()

    async def all_done() -> bool:
        stats = await queue.get_stats()
        return (stats.completed, stats.active) == (5, 0)

    await eventually(all_done)
    assert jobs.most_running == 3  # the pin took no slot of the global concurrency
    assert await queue.get_jobs_by_status(JobStatus.ACTIVE) == []
    assert redis_command(port, "ZCARD", active) == 1
    assert await queue.clear() == 5  # the completed jobs; not the pin
