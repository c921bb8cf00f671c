"""add_jobs and add_flow on the event loop's own connection: pipelining, NOSCRIPT,
breaks, timeouts."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobqueue import Durability, Flow, FlowIds, JobQueue, JobStatus, QueueSettings, RedisConfig
from jobqueue.errors import ConnectionError, NotReplicatedError, SerializationError
from jobqueue.loop_connection import LoopConnection
from jobqueue.testing import RedisServer, redis_command

from .helpers import eventually, not_on_a_cluster, port_of

pytestmark = not_on_a_cluster


def loop_connection(queue: JobQueue) -> LoopConnection:
    conn = queue._producer._conn
    assert conn is not None and not conn.closed, "add_jobs is not on the loop's connection"
    return conn


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[JobQueue]:
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_job("warm-up", None)  # the native connection goes first
        await q.add_job("warm-up", None)  # this one opens the loop's connection
        loop_connection(q)
        yield q


async def test_pipelined_adds_each_get_their_own_job(queue: JobQueue) -> None:
    ids = await asyncio.gather(*(queue.add_job("t", {"n": n}) for n in range(300)))
    assert len(set(ids)) == 300
    for n, job_id in enumerate(ids):
        info = await queue.get_job_status(job_id)
        assert info is not None and info.data == {"n": n}
    assert loop_connection(queue).__class__ is LoopConnection


async def test_bulk_and_delayed_jobs_report_their_status(queue: JobQueue) -> None:
    ids = await queue.add_jobs([("t", 1), ("t", 2, {"delay": 60_000}), ("t", 3)])
    statuses = [(await queue.get_job_status(i)).status.value for i in ids]  # type: ignore[union-attr]
    assert statuses == ["waiting", "delayed", "waiting"]
    assert await queue.add_job("t", None, idempotency_key="k") == await queue.add_job(
        "t", None, idempotency_key="k"
    )


async def test_a_flushed_script_cache_is_reloaded(queue: JobQueue, redis_url: str) -> None:
    conn = loop_connection(queue)
    assert redis_command(port_of(redis_url), "SCRIPT", "FLUSH") == "OK"
    assert redis_command(port_of(redis_url), "FUNCTION", "FLUSH") == "OK"
    ids = await asyncio.gather(*(queue.add_job("t", {"n": n}) for n in range(5)))
    assert [(await queue.get_job_status(i)).data for i in ids] == [{"n": n} for n in range(5)]  # type: ignore[union-attr]
    assert loop_connection(queue) is conn  # NOSCRIPT did not break the connection


async def test_bad_input_writes_nothing_and_keeps_replies_in_step(queue: JobQueue) -> None:
    before = (await queue.get_stats()).waiting
    with pytest.raises(SerializationError):
        await queue.add_job("t", {"x": object()})
    assert (await queue.get_stats()).waiting == before
    job_id = await queue.add_job("t", "after")
    info = await queue.get_job_status(job_id)
    assert info is not None and info.data == "after"
    assert loop_connection(queue).__class__ is LoopConnection


async def kill_loop_connection(queue: JobQueue, redis_url: str) -> LoopConnection:
    """Kill the queue's event-loop connection on the server's side and wait until the
    queue noticed; returns the dead connection."""
    conn = loop_connection(queue)
    host, port = conn._transport.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
    redis_command(port_of(redis_url), "CLIENT", "KILL", "ADDR", f"{host}:{port}")

    async def noticed() -> bool:
        return conn.closed

    await eventually(noticed)
    return conn


async def test_a_killed_connection_falls_back_to_the_native_one(
    queue: JobQueue, redis_url: str
) -> None:
    conn = await kill_loop_connection(queue, redis_url)
    first = await queue.add_job("t", "on the native connection")
    second = await queue.add_job("t", "on a new loop connection")
    assert loop_connection(queue) is not conn
    for job_id, data in ((first, "on the native connection"), (second, "on a new loop connection")):
        info = await queue.get_job_status(job_id)
        assert info is not None and info.data == data


async def test_the_command_timeout_applies(redis_url: str, queue_name: str) -> None:
    config = RedisConfig(url=redis_url, command_timeout=300)
    async with JobQueue(queue_name, redis=config) as queue:
        await queue.add_job("t", None)
        await queue.add_job("t", None)
        conn = loop_connection(queue)
        port = port_of(redis_url)
        assert redis_command(port, "CLIENT", "PAUSE", "3000", "WRITE") == "OK"
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(ConnectionError, match="command timeout"):
                await queue.add_job("t", None)
            assert asyncio.get_running_loop().time() - started < 2.5
            assert conn.closed
        finally:
            redis_command(port, "CLIENT", "UNPAUSE")
        assert await queue.add_job("t", "later")


async def test_password_and_db_apply_to_the_loop_connection() -> None:
    with RedisServer(password="s3cret") as server:
        config = RedisConfig(host="127.0.0.1", port=server.port, password="s3cret", db=2)
        async with JobQueue("q", redis=config) as queue:
            for _ in range(3):
                await queue.add_job("t", None)
            loop_connection(queue)
            assert (await queue.get_stats()).waiting == 3
        db0 = RedisConfig(host="127.0.0.1", port=server.port, password="s3cret")
        async with JobQueue("q", redis=db0) as other:
            assert (await other.get_stats()).waiting == 0


def test_a_queue_closed_after_its_event_loop_ended(redis_url: str, queue_name: str) -> None:
    queue = JobQueue(queue_name, redis=redis_url)

    async def add() -> str:
        await queue.add_job("t", None)
        job_id = await queue.add_job("t", "on the loop's connection")
        loop_connection(queue)
        return job_id

    job_id = asyncio.run(add())  # that loop is closed when this returns
    asyncio.run(queue.close())

    async def read() -> object:
        async with JobQueue(queue_name, redis=redis_url) as reader:
            info = await reader.get_job_status(job_id)
            return None if info is None else info.data

    assert asyncio.run(read()) == "on the loop's connection"


async def test_a_unix_socket_server(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    with RedisServer(extra_args=["--unixsocket", str(path), "--unixsocketperm", "700"]):
        async with JobQueue("q", redis=f"unix://{path}") as queue:
            ids = [await queue.add_job("t", n) for n in range(3)]
            loop_connection(queue)
            assert [(await queue.get_job_status(i)).data for i in ids] == [0, 1, 2]  # type: ignore[union-attr]


def _child_adds_through(queue: JobQueue) -> None:
    asyncio.run(queue.add_job("t", "from the child"))


async def test_a_forked_child_leaves_the_parents_loop_connection_alone(queue: JobQueue) -> None:
    conn = loop_connection(queue)
    child = multiprocessing.get_context("fork").Process(target=_child_adds_through, args=(queue,))
    child.start()
    await asyncio.get_running_loop().run_in_executor(None, child.join, 60)
    assert child.exitcode == 0
    after = await queue.add_job("t", "from the parent")
    assert loop_connection(queue) is conn  # still open, still in step
    datas = [j.data for j in await queue.get_jobs_by_status("waiting")]
    assert datas[-2:] == ["from the child", "from the parent"]
    info = await queue.get_job_status(after)
    assert info is not None and info.data == "from the parent"


def last_command(redis_url: str, conn: LoopConnection) -> str:
    """The last command the server ran for ``conn`` (``cmd=`` of ``CLIENT LIST``)."""
    host, port = conn._transport.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
    clients = redis_command(port_of(redis_url), "CLIENT", "LIST")
    assert isinstance(clients, bytes)
    for line in clients.decode().splitlines():
        fields = dict(field.split("=", 1) for field in line.split(" ") if "=" in field)
        if fields["addr"] == f"{host}:{port}":
            return fields["cmd"]
    raise AssertionError(f"no client {host}:{port}")


async def test_flows_go_on_the_loop_connection(redis_url: str, queue_name: str) -> None:
    other = f"{queue_name}-other"
    async with JobQueue(queue_name, redis=redis_url) as queue:
        await queue.add_flow(Flow("p", 0, [Flow("c", 1)]))  # the native connection goes first
        assert queue._producer._conn is None
        # This one opens the loop's connection and goes on it; its child in another queue
        # (a second call, to that queue's keys) too.
        ids = await queue.add_flow(Flow("p", 2, [Flow("c", 3), Flow("c", 4, queue=other)]))
        conn = loop_connection(queue)
        assert last_command(redis_url, conn) in ("fcall", "evalsha")  # the handshake: ping
        tree = await queue.get_flow(ids.id)
        assert tree.job is not None and tree.job.status is JobStatus.WAITING_CHILDREN
        assert [(c.queue, c.job.status, c.job.data) for c in tree.children] == [  # type: ignore[union-attr]
            (queue_name, JobStatus.WAITING, 3),
            (other, JobStatus.WAITING, 4),
        ]
        # The library flushed: loaded again, and the connection stays in step.
        assert redis_command(port_of(redis_url), "SCRIPT", "FLUSH") == "OK"
        assert redis_command(port_of(redis_url), "FUNCTION", "FLUSH") == "OK"
        await queue.add_flow(Flow("p", 5, [Flow("c", 6)]))
        # Bad input in one of concurrent flows fails it alone, before anything is written.
        good = [Flow("p", n, [Flow("c", n)]) for n in range(3)]
        outcomes = await asyncio.gather(
            *(
                queue.add_flow(f)
                for f in [good[0], Flow("p", None, [Flow("c", object())]), *good[1:]]
            ),
            return_exceptions=True,
        )
        assert isinstance(outcomes[1], SerializationError)
        assert all(isinstance(o, FlowIds) for i, o in enumerate(outcomes) if i != 1)
        assert loop_connection(queue) is conn
        stats = await queue.get_stats()
        assert (stats.waiting, stats.waiting_children) == (6, 6)


async def test_flows_without_the_loop_connection(redis_url: str, queue_name: str) -> None:
    async with JobQueue(queue_name, redis=redis_url) as queue:
        await queue.add_flow(Flow("p", 0, [Flow("c", 1)]))
        await queue.add_flow(Flow("p", 2, [Flow("c", 3)]))
        conn = await kill_loop_connection(queue, redis_url)
        await queue.add_flow(Flow("p", 4, [Flow("c", 5)]))  # on the native connection
        await queue.add_flow(Flow("p", 6, [Flow("c", 7)]))  # on a new loop connection
        assert loop_connection(queue) is not conn
        stats = await queue.get_stats()
        assert (stats.waiting, stats.waiting_children) == (4, 4)
    # A durable queue's writes WAIT for the replicas, which only the native connection
    # does: no replica here, so each flow is written and reported short of them.
    durable = QueueSettings(durability=Durability(replicas=1, timeout=20))
    async with JobQueue(f"{queue_name}-durable", redis=redis_url, settings=durable) as queue:
        for n in range(2):
            with pytest.raises(NotReplicatedError, match="job\\(s\\) of a flow"):
                await queue.add_flow(Flow("p", n, [Flow("c", n)]))
        assert queue._producer._conn is None
        assert (await queue.get_stats()).waiting_children == 2
