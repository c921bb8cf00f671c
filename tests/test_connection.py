"""Connecting: timeouts, retry_strategy, reconnects, auth, db selection, fork safety."""

from __future__ import annotations

import asyncio
import builtins
import multiprocessing
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from jobqueue import JobQueue, RedisConfig
from jobqueue.errors import ConnectionError
from jobqueue.testing import RedisServer, free_port, redis_command

T = TypeVar("T")


async def test_unreachable_redis_raises_within_the_connect_timeout() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with JobQueue("q", redis=RedisConfig(url=url, connect_timeout=500)) as q:
        started = time.monotonic()
        with pytest.raises(ConnectionError) as info:
            await q.add_job("t", None)
        assert time.monotonic() - started < 3
    assert isinstance(info.value, builtins.ConnectionError)
    assert "cannot connect to Redis" in str(info.value)


async def test_retry_strategy_is_asked_and_none_gives_up_at_once() -> None:
    calls: list[int] = []

    def strategy(times: int) -> int | None:
        calls.append(times)
        return 20 if times < 3 else None

    url = f"redis://127.0.0.1:{free_port()}/0"
    config = RedisConfig(url=url, connect_timeout=10_000, retry_strategy=strategy)
    async with JobQueue("q", redis=config) as q:
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="retry_strategy gave up"):
            await q.get_stats()
        assert time.monotonic() - started < 5  # gave up long before the 10 s timeout
    assert calls == [1, 2, 3]


async def test_constructing_a_queue_never_connects() -> None:
    q = JobQueue("q", redis=f"redis://127.0.0.1:{free_port()}/0")
    assert not q.closed
    await q.close()


async def test_queue_reconnects_after_a_server_restart(
    redis_server: RedisServer, redis_url: str, queue_name: str
) -> None:
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_job("t", None)
        await q.add_job("t", None)  # add_jobs also has the event loop's connection now
        redis_server.restart()
        errors = 0

        async def retried(call: Callable[[], Awaitable[T]]) -> T:
            nonlocal errors
            for _ in range(5):
                try:
                    return await call()
                except ConnectionError:
                    errors += 1  # the request in flight on a dead connection
            raise AssertionError("no reconnect")

        await retried(lambda: q.add_job("t", None))
        stats = await retried(q.get_stats)
        assert stats.waiting == 1  # the restarted server kept no data
        # Each of the two connections fails at most its one request in flight.
        assert errors <= 2


async def test_password_auth() -> None:
    with RedisServer(password="s3cret") as server:
        wrong = RedisConfig(
            host="127.0.0.1", port=server.port, password="nope", connect_timeout=500
        )
        async with JobQueue("q", redis=wrong) as q:
            with pytest.raises(ConnectionError):
                await q.add_job("t", None)
        right = RedisConfig(host="127.0.0.1", port=server.port, password="s3cret")
        async with JobQueue("q", redis=right) as q:
            assert await q.add_job("t", None) == "1"
        async with JobQueue("q", redis=server.url) as q:  # the password in the URL
            assert (await q.get_stats()).waiting == 1


async def test_acl_username_and_password() -> None:
    with RedisServer() as server:
        redis_command(server.port, "ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all")
        config = RedisConfig(host="127.0.0.1", port=server.port, username="app", password="pw")
        async with JobQueue("q", redis=config) as q:
            assert await q.add_job("t", None) == "1"


async def test_db_selection(redis_server: RedisServer, redis_url: str, queue_name: str) -> None:
    config = RedisConfig(url=redis_url, db=3)
    async with JobQueue(queue_name, redis=config) as q:
        await q.add_job("t", None)
    keyspace = redis_command(redis_server.port, "INFO", "keyspace")
    assert isinstance(keyspace, bytes)
    assert b"db3:keys=" in keyspace
    assert b"db0:" not in keyspace


def _child_adds_a_job(url: str, name: str) -> None:
    async def add() -> None:
        async with JobQueue(name, redis=url) as q:
            await q.add_job("from-child", {"pid": 1})

    asyncio.run(add())


async def test_a_forked_child_gets_its_own_runtime_and_connection(
    redis_url: str, queue_name: str
) -> None:
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_job("from-parent", None)  # the parent's runtime and connection exist
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=_child_adds_a_job, args=(redis_url, queue_name))
        child.start()
        await asyncio.get_running_loop().run_in_executor(None, child.join, 60)
        assert child.exitcode == 0
        names = [j.name for j in await q.get_jobs_by_status("waiting")]
        assert names == ["from-parent", "from-child"]
        await q.add_job("parent-again", None)  # the parent is unaffected
        assert (await q.get_stats()).waiting == 3


async def test_ready_check_waits_for_a_loading_server() -> None:
    # A server started on a large dump answers LOADING until it has read the dump; a
    # queue with the ready check waits for that instead of failing.
    with RedisServer(extra_args=["--enable-debug-command", "yes"]) as server:
        # Both take seconds, more on a loaded machine.
        redis_command(server.port, "DEBUG", "POPULATE", "3000000", "k", "64", timeout=60)
        redis_command(server.port, "SAVE", timeout=60)
        dump_dir, port = server._dir, server.port
        server.kill()
        assert dump_dir is not None
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(dump_dir),
             "--save", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            first_reply: object = None
            deadline = time.monotonic() + 30
            while first_reply is None and time.monotonic() < deadline:
                try:
                    first_reply = redis_command(port, "PING")
                except OSError:
                    await asyncio.sleep(0.001)  # not listening yet
            if not (isinstance(first_reply, RuntimeError) and "LOADING" in str(first_reply)):
                pytest.skip("the dump loaded before the test could see the server loading")
            async with JobQueue("q", redis=RedisConfig(host="127.0.0.1", port=port)) as q:
                stats = await q.get_stats()  # would raise RedisError(LOADING) without the check
            assert stats.waiting == 0
        finally:
            process.terminate()
            process.wait()
