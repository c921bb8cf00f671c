"""Checks of partitioned queues, run on one redis-server (tests/test_partitions.py) and on
a 3-primary cluster (tests/test_partitions_cluster.py). Each takes ``make(name=...,
**kwargs)`` that makes a JobQueue on the server or cluster under test, and a queue name."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from jobqueue import JobQueue, JobStatus
from jobqueue.errors import InvalidOptionError, JobNotFoundError
from jobqueue.job import Job
from jobqueue.partitions import Router

Make = Callable[..., JobQueue]
Case = Callable[[Make, str], Awaitable[None]]


async def run_exactly_once(make: Make, name: str, jobs: int) -> None:
    """``jobs`` jobs, added in batches and one by one, run exactly once by two workers;
    every partition gets a share; stats add up over the partitions."""
    producer = make(name=name, partitions=3)
    ids = await producer.add_jobs([("count", {"i": i}) for i in range(jobs - 10)])
    ids += [await producer.add_job("count", {"i": i}) for i in range(jobs - 10, jobs)]
    assert len(set(ids)) == jobs
    spread = Counter(Router(3).of_id(job_id) for job_id in ids)
    assert sorted(spread) == [0, 1, 2] and min(spread.values()) >= jobs // 3 - 1
    stats = await producer.get_stats()
    assert stats.waiting == jobs and stats.active == 0
    runs: Counter[str] = Counter()

    async def count(job: Job[dict[str, int]]) -> int:
        runs[job.id] += 1
        return job.data["i"]

    workers = [make(name=name, partitions=3, worker={"concurrency": 6}) for _ in range(2)]
    for worker in workers:
        worker.process("count", count)
        await worker.start_worker()
    info = await producer.wait_for(ids[-1], timeout=30_000)
    assert info.status is JobStatus.COMPLETED and info.return_value == jobs - 1
    for _ in range(300):
        if (await producer.get_stats()).completed == jobs:
            break
        await asyncio.sleep(0.1)
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    stats = await producer.get_stats()
    assert (stats.completed, stats.waiting, stats.active) == (jobs, 0, 0)
    done = await producer.get_jobs_by_status(JobStatus.COMPLETED, limit=jobs)
    assert len(done) == jobs
    assert [j.finished_at for j in done] == sorted((j.finished_at for j in done), reverse=True)


async def by_id(make: Make, name: str) -> None:
    """get_job_status, remove_job and retry_job find a job's partition from its id."""
    queue = make(name=name, partitions=3, dlq={"enabled": True})
    ids = await queue.add_jobs([("fail", i, {"attempts": 1}) for i in range(6)])
    assert {Router(3).of_id(i) for i in ids} == {0, 1, 2}
    for job_id in ids:
        info = await queue.get_job_status(job_id)
        assert info is not None and info.id == job_id and info.status is JobStatus.WAITING
    await queue.remove_job(ids[0])
    assert await queue.get_job_status(ids[0]) is None
    with pytest.raises(JobNotFoundError):
        await queue.remove_job(ids[0])

    async def fail(job: Job[int]) -> None:
        raise RuntimeError(f"no {job.data}")

    queue.process("fail", fail)
    await queue.start_worker()
    for job_id in ids[1:]:
        assert (await queue.wait_for(job_id, timeout=10_000)).status is JobStatus.DLQ
    assert len(await queue.get_dlq_jobs()) == 5
    await queue.retry_job(ids[1])
    assert (await queue.wait_for(ids[1], timeout=10_000)).status is JobStatus.DLQ
    assert await queue.replay_dlq(limit=3) == 3
    for _ in range(100):
        if (await queue.get_stats()).dlq == 5:
            break
        await asyncio.sleep(0.05)
    assert (await queue.get_stats()).dlq == 5


async def dedupe(make: Make, name: str) -> None:
    """Custom ids and idempotency keys find the first job across processes and batches."""
    first, second = make(name=name, partitions=3), make(name=name, partitions=3)
    a = await first.add_job("x", 1, job_id="order-17")
    assert a == "order-17"
    assert await second.add_job("x", 2, job_id="order-17") == "order-17"
    keyed = await first.add_job("x", 3, idempotency_key="welcome-ann")
    assert await second.add_job("x", 4, idempotency_key="welcome-ann") == keyed
    batch = await second.add_jobs(
        [("x", 5, {"idempotency_key": f"k{i % 4}"}) for i in range(12)]
        + [("x", 6, {"job_id": "order-17"}), ("x", 7, {"job_id": "order-18"})]
    )
    assert len(set(batch[:12])) == 4 and batch[12:] == ["order-17", "order-18"]
    again = await first.add_jobs([("x", 8, {"idempotency_key": f"k{i}"}) for i in range(4)])
    assert again == batch[:4]
    assert (await first.get_stats()).waiting == 1 + 1 + 4 + 1
    info = await second.get_job_status("order-17")
    assert info is not None and info.data == 1


async def groups_stay_in_one_partition(make: Make, name: str) -> None:
    """A group's jobs all land in one partition, so its concurrency limit holds."""
    queue = make(name=name, partitions=3, worker={"concurrency": 9})
    await queue.set_group_limit("tenant-a", concurrency=2)
    ids = await queue.add_jobs([("g", i, {"group": "tenant-a"}) for i in range(20)])
    assert len({Router(3).of_id(i) for i in ids}) == 1
    running = most = 0

    async def g(job: Job[int]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1

    queue.process("g", g)
    await queue.start_worker()
    for job_id in ids:
        await queue.wait_for(job_id, timeout=10_000)
    assert 1 <= most <= 2  # the group limit holds across the partitioned queue
    stats = await queue.get_stats(group="tenant-a")
    assert stats.concurrency == 2 and stats.active == 0


async def mismatch_refused(make: Make, name: str) -> None:
    """Every process of a queue must use the stored count; nothing is written otherwise."""
    three = make(name=name, partitions=3)
    await three.add_job("x", 1)
    for count in (2, 4):
        with pytest.raises(InvalidOptionError, match="stored with 3 partition"):
            await make(name=name, partitions=count).add_job("x", 1)
    with pytest.raises(InvalidOptionError, match="stored with 3 partition"):
        await make(name=name).start_worker()
    assert (await three.get_stats()).waiting == 1
    plain = make(name=f"{name}-plain")
    await plain.add_job("x", 1)
    with pytest.raises(InvalidOptionError, match="stored with 1 partition"):
        await make(name=f"{name}-plain", partitions=3).add_job("x", 1)


async def fan_out(make: Make, name: str) -> None:
    """pause, resume, drain and clear act on every partition; health_check asks each."""
    queue = make(name=name, partitions=3)
    health = await queue.health_check()
    assert health.healthy and health.scripts == "FCALL" and health.workers == 0
    await queue.add_jobs([("x", i) for i in range(9)])
    await queue.add_job("x", 0, delay=60_000)
    await queue.pause()
    stats = await queue.get_stats()
    assert (stats.paused, stats.waiting, stats.delayed) == (9, 0, 1)
    assert len(await queue.get_jobs_by_status(JobStatus.PAUSED, limit=100)) == 9
    await queue.resume()
    waiting = await queue.get_jobs_by_status(JobStatus.WAITING, limit=5)
    assert len(waiting) == 5
    assert await queue.drain() == 9
    assert await queue.clear() == 1
    assert (await queue.get_stats()).delayed == 0


async def partition_keys(make: Make, name: str) -> None:
    """Jobs of one ``partition_key`` share a partition and run in the order added (one
    partition's order); generated ids name their partition (``<i>.<n>``, ``<n>`` in
    partition 0) with no EXISTS check; a key that hashes elsewhere than the job's group,
    idempotency key or custom id is refused and writes nothing."""
    queue = make(name=name, partitions=3, worker={"concurrency": 3})
    router = Router(3)
    ids = await queue.add_jobs([("k", i, {"partition_key": "acct-7"}) for i in range(12)])
    ids.append(await queue.add_job("k", 12, partition_key="acct-7"))
    where = router.of_key("acct-7")
    assert {router.of_id(i) for i in ids} == {where}
    assert all((i.isdigit() if where == 0 else i.startswith(f"{where}.")) for i in ids)
    plain = await queue.add_jobs([("k", -1) for _ in range(6)])
    assert {router.of_id(i) for i in plain} == {0, 1, 2}
    assert all(i.isdigit() or i.split(".")[1].isdigit() for i in plain)
    other = next(f"g{i}" for i in range(100) if router.of_key(f"g{i}") != where)
    before = await queue.get_stats()
    with pytest.raises(InvalidOptionError, match="another partition") as refused:
        await queue.add_job("k", 0, partition_key="acct-7", group=other)
    assert refused.value.field == "partition_key"
    with pytest.raises(InvalidOptionError, match="another partition") as refused:
        await queue.add_jobs([("k", 0), ("k", 0, {"partition_key": "acct-7", "job_id": other})])
    assert refused.value.field == "jobs[1].job_id"
    with pytest.raises(InvalidOptionError):
        await queue.add_job("k", 0, partition_key=7)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="scheduled"):
        await queue.schedule_every("k", 0, 60_000, partition_key="a")
    assert (await queue.get_stats()).waiting == before.waiting
    order: list[int] = []

    async def k(job: Job[int]) -> None:
        if job.data >= 0:
            order.append(job.data)

    queue.process("k", k)
    await queue.start_worker()
    for job_id in ids + plain:
        await queue.wait_for(job_id, timeout=10_000)
    assert sorted(order) == list(range(13))
    # Fetched in one partition's order; a worker of concurrency 3 may finish them out of
    # order, so the order checked is the start order, which is the fetch order.


#: The checks above but run_exactly_once (whose job count each topology sets).
async def rate_limit_per_queue(make: Make, name: str) -> None:
    """The worker's rate limit (6 per 500 ms) is the whole queue's, shared by the
    partitions and by two workers: 18 jobs of one partition use all of it (three windows,
    not the nine of a third of it), and 18 jobs over every partition never more."""
    router = Router(3)
    key = next(f"k{i}" for i in range(100) if router.of_key(f"k{i}") == 1)
    producer = make(name=name, partitions=3)
    starts: list[float] = []

    async def record(job: Job[int]) -> None:
        starts.append(time.monotonic())

    one_partition = [("r", i, {"partition_key": key}) for i in range(18)]
    every_partition = [("r", i) for i in range(18)]
    for jobs in (one_partition, every_partition):
        starts.clear()
        ids = await producer.add_jobs(jobs)
        if jobs is every_partition:
            assert {router.of_id(i) for i in ids} == {0, 1, 2}
        workers = [
            make(name=name, partitions=3, worker={"concurrency": 4, "limiter": (6, 500)})
            for _ in range(2)
        ]
        begun = time.monotonic()
        for worker in workers:
            worker.process("r", record)
            await worker.start_worker()
        for _ in range(200):
            if len(starts) == 18:
                break
            await asyncio.sleep(0.05)
        assert len(starts) == 18
        # 6 per window: the 13th start is in the third window, which opens at least two
        # windows after the first (itself opened after `begun`).
        assert max(starts) - begun >= 1.0 - 0.05
        assert max(starts) - begun < 3.0  # a third of the limit would take 4 s
        for worker in workers:
            await worker.close()
        await asyncio.sleep(0.6)  # the next round starts in a window of its own


async def global_concurrency_per_queue(make: Make, name: str) -> None:
    """``set_global_concurrency(4)`` is the whole queue's, shared by the partitions and by
    two workers: jobs of one partition run 4 at once (not a third of it), and jobs of
    every partition never more than 4 at once; acks give the slots back."""
    router = Router(3)
    key = next(f"k{i}" for i in range(100) if router.of_key(f"k{i}") == 2)
    producer = make(name=name, partitions=3)
    await producer.set_global_concurrency(4)
    running, most = 0, 0
    four_ran = asyncio.Event()

    async def hold(job: Job[int]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 4:
            four_ran.set()
        await asyncio.sleep(0.05)
        running -= 1

    workers = [make(name=name, partitions=3, worker={"concurrency": 6}) for _ in range(2)]
    for worker in workers:
        worker.process("h", hold)
        await worker.start_worker()
    ids = await producer.add_jobs([("h", i, {"partition_key": key}) for i in range(12)])
    ids += await producer.add_jobs([("h", i) for i in range(24)])
    assert {router.of_id(i) for i in ids} == {0, 1, 2}
    for job_id in ids:
        info = await producer.wait_for(job_id, timeout=20_000)
        assert info.status is JobStatus.COMPLETED
    assert four_ran.is_set() and most == 4
    stats = await producer.get_stats()
    assert (stats.completed, stats.active) == (36, 0)


CASES = [
    pytest.param(by_id, id="by-id"),
    pytest.param(dedupe, id="dedupe"),
    pytest.param(groups_stay_in_one_partition, id="groups"),
    pytest.param(mismatch_refused, id="mismatch"),
    pytest.param(fan_out, id="fan-out"),
    pytest.param(partition_keys, id="partition-key"),
    pytest.param(rate_limit_per_queue, id="rate-limit"),
    pytest.param(global_concurrency_per_queue, id="global-concurrency"),
]
