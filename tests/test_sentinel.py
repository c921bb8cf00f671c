"""Redis Sentinel: every public call goes to the primary the sentinels name, and a
graceful failover (the old primary turned into a replica, so it answers READONLY and
unblocks blocked clients) is followed without help. Durability (WAIT) on a primary with
one replica. Real servers only: a primary, a replica and three sentinels."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from jobqueue import (
    Durability,
    Flow,
    JobEvent,
    JobQueue,
    JobStatus,
    NotReplicatedError,
    QueueEvent,
    QueueEvents,
    QueueSettings,
    RedisConfig,
)
from jobqueue.testing import free_port, redis_command
from jobqueue.testing_sentinel import SentinelSet

from .helpers import eventually


@pytest.fixture(scope="module")
def deployment() -> Iterator[SentinelSet]:
    with SentinelSet() as found:
        yield found


@pytest.fixture
async def queue(deployment: SentinelSet) -> AsyncIterator[JobQueue]:
    q = JobQueue(f"sentinel-{uuid.uuid4().hex[:8]}", redis=deployment.url)
    yield q
    await q.close(timeout=5000)


async def _done(queue: JobQueue, ids: list[str]) -> bool:
    infos = [await queue.get_job_status(i) for i in ids]
    return all(i is not None and i.status is JobStatus.COMPLETED for i in infos)


async def test_calls_go_to_the_primary_the_sentinels_name(
    deployment: SentinelSet, queue: JobQueue
) -> None:
    ran: list[int] = []
    queue.process("double", lambda job: ran.append(job.data["n"]) or job.data["n"] * 2)
    single = await queue.add_job("double", {"n": 1})
    batch = await queue.add_jobs([("double", {"n": n}) for n in range(2, 6)])
    primary = deployment.primary.port
    assert _replicated(primary, queue.name, single)
    await queue.start_worker()
    await eventually(lambda: _done(queue, [single, *batch]))
    assert sorted(ran) == [1, 2, 3, 4, 5]
    stats = await queue.get_stats()
    assert (stats.completed, stats.waiting, stats.active) == (5, 0, 0)
    assert (await queue.health_check()).healthy


async def test_schedules_and_fleet_events_through_sentinel(
    deployment: SentinelSet, queue: JobQueue
) -> None:
    seen: list[JobEvent] = []
    queue.process("tick", lambda job: None)
    async with QueueEvents(queue.name, redis=deployment.url) as events:
        events.on(QueueEvent.JOB_COMPLETED, lambda job: seen.append(job))
        sid = await queue.schedule_every("tick", {"k": 1}, 200)
        assert [s.id for s in await queue.list_schedules()] == [sid]
        await queue.start_worker()
        await eventually(lambda: _value(len(seen) >= 2), timeout=15)
    assert all(e.name == "tick" for e in seen)


async def _value(x: bool) -> bool:
    return x


async def test_a_graceful_failover_is_followed(deployment: SentinelSet, queue: JobQueue) -> None:
    """SENTINEL FAILOVER demotes the primary while it runs: the worker blocked on it is
    unblocked or cut off, writes to it answer READONLY, and every connection must find
    the new primary by itself."""
    done: list[str] = []
    queue.process("j", lambda job: done.append(job.id))
    await queue.start_worker()
    before = await queue.add_job("j", None)
    await eventually(lambda: _value(before in done))
    old = deployment.primary_port()
    assert old is not None
    assert redis_command(deployment.sentinels[0].port, "SENTINEL", "FAILOVER", "mymaster") == "OK"
    new = deployment.wait_for_failover(old)
    ids = []
    for n in range(20):  # adds during and after the switch, retried like a producer would
        ids.append(await _add_with_retry(queue, n))
    await eventually(lambda: _done(queue, ids), timeout=20)
    assert _replicated(new, queue.name, ids[-1])
    # The demoted server holds the jobs as a replica again.
    deployment.wait_replicas_in_sync()
    await eventually(lambda: _value(_replicated(old, queue.name, ids[-1])), timeout=10)


def _replicated(port: int, name: str, job_id: str) -> bool:
    """Whether the server on `port` holds the job (the primary, or a replica in sync)."""
    return redis_command(port, "EXISTS", f"jq:{{{name}}}:j:{job_id}") == 1


async def _add_with_retry(queue: JobQueue, n: int) -> str:
    key = f"add-{n}"  # the idempotency key makes a retried add safe
    for _ in range(50):
        try:
            return await queue.add_job("j", {"n": n}, idempotency_key=key)
        except ConnectionError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"add {n} never went through")


def test_the_url_names_sentinels_service_and_db() -> None:
    config = RedisConfig(url="redis+sentinel://u:pw@a:1,b,[::1]:3/svc/2")
    assert config.sentinels == [("a", 1), ("b", 26379), ("::1", 3)]
    assert config.service_name == "svc"
    kwargs = config.native_kwargs()
    assert kwargs["sentinel"] == ([("a", 1), ("b", 26379), ("::1", 3)], "svc", None, None)
    assert kwargs["url"] == "redis://u:pw@a:1/2"
    assert "pw" not in repr(
        RedisConfig(sentinels=["a:1"], service_name="s", sentinel_password="pw")
    )


async def test_no_sentinel_answering_is_a_connection_error() -> None:
    port = free_port()
    config = RedisConfig(sentinels=[("127.0.0.1", port)], service_name="s", connect_timeout=300)
    queue = JobQueue("nobody", redis=config)
    try:
        with pytest.raises(ConnectionError, match=f"no sentinel named a primary.*{port}"):
            await queue.add_job("j", None)
    finally:
        await queue.close()


async def test_passwords_of_the_servers_and_of_the_sentinels() -> None:
    with SentinelSet(password="data-pw", sentinel_password="sentinel-pw") as protected:
        config = RedisConfig(
            url=protected.url, sentinel_password="sentinel-pw"
        )  # the URL's login is the servers'
        async with JobQueue("auth", redis=config) as queue:
            done: list[str] = []
            queue.process("j", lambda job: done.append(job.id))
            await queue.start_worker()
            job = await queue.add_job("j", None)
            await eventually(lambda: _value(done == [job]))
        wrong = RedisConfig(url=protected.url, sentinel_password="nope", connect_timeout=300)
        async with JobQueue("auth", redis=wrong) as queue:
            with pytest.raises(ConnectionError, match="no sentinel named a primary"):
                await queue.add_job("j", None)


async def test_durable_writes_wait_for_the_replica(deployment: SentinelSet) -> None:
    deployment.wait_replicas_in_sync()
    settings = QueueSettings(durability=Durability(replicas=1, timeout=2000))
    queue = JobQueue(f"durable-{uuid.uuid4().hex[:8]}", redis=deployment.url, settings=settings)
    try:
        job = await queue.add_job("j", {"n": 1})
        replica = next(s for s in deployment.servers if s.port != deployment.primary_port())
        # WAIT returned: the replica has the job, not just eventually.
        assert _replicated(replica.port, queue.name, job)
    finally:
        await queue.close(timeout=5000)


async def test_durability_short_of_replicas_raises_and_keeps_the_jobs(
    deployment: SentinelSet,
) -> None:
    settings = QueueSettings(durability=Durability(replicas=2, timeout=50))  # only 1 exists
    queue = JobQueue(f"durable-{uuid.uuid4().hex[:8]}", redis=deployment.url, settings=settings)
    errors: list[BaseException] = []
    queue.on(QueueEvent.QUEUE_ERROR, lambda _, error: errors.append(error))
    done: list[str] = []
    queue.process("j", lambda job: done.append(job.id))
    try:
        with pytest.raises(NotReplicatedError, match=r"1 job.*confirmed by 1 of the 2"):
            await queue.add_jobs([("j", {"n": 1})])
        stats = await queue.get_stats()
        assert stats.waiting == 1  # written on the primary, not rolled back
        await queue.start_worker()
        await eventually(lambda: _value(len(done) == 1))
        # The ack applied once (the job completed) and its shortfall was reported.
        shortfall = "writing job results: results of 1 job.*confirmed by 1 of the 2"
        await eventually(lambda: _value(any(re.search(shortfall, str(e)) for e in errors)))
        assert (await queue.get_stats()).completed == 1
    finally:
        await queue.close(timeout=5000)


async def test_a_flows_handover_leaves_the_outbox_once_the_replicas_confirmed_it(
    deployment: SentinelSet,
) -> None:
    """A child of another queue tells its parent through its queue's outbox. Durable, the
    entry leaves the outbox only once the replicas confirmed the parent's update: short of
    replicas, the update is applied on the primary (the parent runs), the shortfall is
    reported and the entry stays, to be handed over again; a worker whose durability the
    replicas meet hands it over and removes it."""
    deployment.wait_replicas_in_sync()
    name = f"flow-{uuid.uuid4().hex[:8]}"
    kids = f"{name}-kids"
    outbox = f"jq:{{{kids}}}:flow:outbox:2"
    parents = JobQueue(name, redis=deployment.url)
    short = QueueSettings(durability=Durability(replicas=2, timeout=50))  # only 1 exists
    children = JobQueue(kids, redis=deployment.url, settings=short)
    met = QueueSettings(durability=Durability(replicas=1, timeout=2000), max_stalled_interval=200)
    children_again = JobQueue(kids, redis=deployment.url, settings=met)
    errors: list[BaseException] = []
    children.on(QueueEvent.QUEUE_ERROR, lambda _, error: errors.append(error))
    parents.process("parent", lambda job: "ran")
    children.process("child", lambda job: job.data)
    children_again.process("child", lambda job: job.data)
    try:
        ids = await parents.add_flow(Flow("parent", None, [Flow("child", 1, queue=kids)]))
        await parents.start_worker()
        await children.start_worker()
        assert (await parents.wait_for(ids.id, timeout=15_000)).return_value == "ran"
        handover = "flow parents.*outcomes of 1 flow child.*confirmed by 1 of the 2"
        await eventually(lambda: _value(any(re.search(handover, str(e)) for e in errors)))
        primary = deployment.primary_port()
        assert redis_command(primary, "LLEN", outbox) == 1
        await children.close(timeout=5000)
        await children_again.start_worker()
        await eventually(lambda: _value(redis_command(primary, "LLEN", outbox) == 0))
        assert (await parents.get_job_status(ids.id)).status is JobStatus.COMPLETED  # type: ignore[union-attr]
    finally:
        for queue in (parents, children, children_again):
            await queue.close(timeout=5000)
