"""A queue written by layout 1 (the key layout of jobqueue before version 2) is brought to
layout 2 when this release first connects to it, and every job in it ends where it should:
waiting, prioritized, delayed, grouped and stalled jobs run, in their order, with their
attempts, logs and progress kept; finished and dead-lettered jobs keep their outcome."""

from __future__ import annotations

import asyncio
from typing import Any

from jobqueue import Job, JobQueue, JobStatus, WorkerConfig
from jobqueue.testing import redis_command, redis_keys

from .helpers import port_of, redis_time_ms

#: The options text layout 1 stored in every job hash (delay and priority were part of it).
OPTS = (
    '{"attempts":3,"delay":0,"jitter":0,"priority":0,"backoff":{"type":"fixed","delay":10},'
    '"timeout":null,"remove_on_complete":{"count":10000,"age":null},'
    '"remove_on_fail":{"count":10000,"age":null}}'
)

#: Writes N waiting jobs of layout 1 in one call, as its add script did: a hash per job
#: with the fields of a plain job, the ids pushed on the wait list in order.
BULK_LAYOUT_1 = """
local base, n, opts, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local first = redis.call('INCRBY', base .. 'id', n) - n
for i = 1, n do
  local id = tostring(first + i)
  redis.call('HSET', base .. 'job:' .. id, 'name', 'bulk', 'data', tostring(i), 'opts', opts,
    'state', 'waiting', 'max_attempts', '3', 'created_at', now)
  redis.call('RPUSH', base .. 'wait', id)
end
return first
"""


def _job(port: int, base: str, job_id: str, **fields: str) -> None:
    plain = {"data": "null", "opts": OPTS, "max_attempts": "3", "created_at": "1700000000000"}
    flat = [item for pair in {**plain, **fields}.items() for item in pair]
    redis_command(port, "HSET", f"{base}job:{job_id}", *flat)


def write_layout_1_queue(port: int, name: str, bulk: int) -> dict[str, str]:
    """A queue of layout 1 with a job in every state; returns their ids by role."""
    base = f"jq:{{{name}}}:"
    now = redis_time_ms(port)
    redis_command(port, "HSET", f"{base}meta", "version", "1", "grouped", "1")
    redis_command(port, "SET", f"{base}id", "20")
    ids = {
        "first": "1", "second": "2", "retried": "3", "ranked": "4", "delayed": "5",
        "stalled": "6", "completed": "7", "failed": "8", "dead": "9", "grouped": "10",
    }  # fmt: skip
    for role in ("first", "second"):
        _job(port, base, ids[role], name="ordered", state="waiting")
    _job(
        port, base, ids["retried"], name="retried", state="waiting", attempts_made="1",
        stalled_count="1", failed_reason="boom", stacktrace="Traceback ...", progress="50",
        queued_at=str(now),
    )  # fmt: skip
    redis_command(port, "RPUSH", f"{base}job:{ids['retried']}:logs", "first try")
    redis_command(port, "RPUSH", f"{base}wait", ids["first"], ids["second"], ids["retried"])
    _job(port, base, ids["ranked"], name="ordered", state="waiting", priority="2")
    redis_command(port, "ZADD", f"{base}prioritized", str(2 * 2**32 + 1), ids["ranked"])
    _job(port, base, ids["delayed"], name="plain", state="delayed", delay="500")
    redis_command(port, "ZADD", f"{base}delayed", str(now + 500), ids["delayed"])
    # Held by a worker of layout 1 that died: its lock lapsed a moment ago.
    _job(
        port, base, ids["stalled"], name="plain", state="active", lock="old-worker:6",
        attempts_made="1", processed_at=str(now - 5000),
    )  # fmt: skip
    redis_command(port, "ZADD", f"{base}active", str(now - 1), ids["stalled"])
    _job(
        port, base, ids["completed"], name="plain", state="completed", attempts_made="1",
        finished_at=str(now - 100), return_value='"done"', processed_at=str(now - 200),
    )  # fmt: skip
    redis_command(port, "ZADD", f"{base}completed", str(now - 100), ids["completed"])
    for role, state in (("failed", "failed"), ("dead", "dlq")):
        _job(
            port, base, ids[role], name="plain", state=state, attempts_made="3",
            finished_at=str(now - 50), failed_reason="it broke", stacktrace="Traceback (x)",
        )  # fmt: skip
        redis_command(port, "ZADD", f"{base}{state}", str(now - 50), ids[role])
    _job(port, base, ids["grouped"], name="plain", state="waiting", group="tenant")
    redis_command(port, "RPUSH", f"{base}g:tenant:wait", ids["grouped"])
    redis_command(port, "ZADD", f"{base}groups", "1", "tenant")
    redis_command(port, "SADD", f"{base}groups:known", "tenant")
    redis_command(port, "SET", f"{base}groups:waiting", "1")
    redis_command(port, "EVAL", BULK_LAYOUT_1, "0", base, str(bulk), OPTS, str(now))
    return ids


async def test_a_layout_1_queue_is_upgraded_and_every_job_ends_where_it_should(
    redis_url: str, queue_name: str
) -> None:
    port = port_of(redis_url)
    bulk = 2500  # more than one upgrade call converts
    ids = write_layout_1_queue(port, queue_name, bulk)
    queue = JobQueue(
        queue_name,
        redis=redis_url,
        worker=WorkerConfig(concurrency=1),
        settings={"max_stalled_interval": 200},
    )
    try:
        # The first call converts the whole queue.
        done = await queue.get_job_status(ids["completed"])
        assert done is not None
        assert (done.status, done.return_value, done.attempts) == (JobStatus.COMPLETED, "done", 1)
        for role, status in (("failed", JobStatus.FAILED), ("dead", JobStatus.DLQ)):
            info = await queue.get_job_status(ids[role])
            assert info is not None
            assert (info.status, info.failed_reason, info.attempts) == (status, "it broke", 3)
            assert info.stacktrace == "Traceback (x)"
        retried = await queue.get_job_status(ids["retried"])
        assert retried is not None
        assert (retried.attempts, retried.progress, retried.failed_reason) == (1, 50, "boom")
        assert retried.logs == ["first try"]
        stats = await queue.get_stats()
        assert (stats.waiting, stats.delayed, stats.active) == (5 + bulk, 1, 1)
        assert (stats.completed, stats.failed, stats.dlq) == (1, 1, 1)
        waiting = await queue.get_jobs_by_status(JobStatus.WAITING, limit=5)
        assert [j.id for j in waiting[:3]] == [ids["first"], ids["second"], ids["retried"]]
        keys = redis_keys(port, f"jq:{{{queue_name}}}:*")
        assert not any(":job:" in k for k in keys), "every job hash was converted"
        for old in ("wait", "prioritized", "delayed", "active", "completed", "failed", "dlq"):
            assert f"jq:{{{queue_name}}}:{old}" not in keys
        meta = redis_command(port, "HGETALL", f"jq:{{{queue_name}}}:meta")
        assert isinstance(meta, list)
        assert dict(zip(meta[::2], meta[1::2], strict=True)).get(b"version") == b"2"
        assert b"upgrading" not in meta

        ran: list[str] = []
        all_ran = asyncio.Event()
        expected = 7 + bulk  # everything that was not finished

        async def note(job: Job[Any]) -> str:
            ran.append(job.id)
            if len(ran) == expected:
                all_ran.set()
            return "ok"

        for name in ("ordered", "retried", "plain", "bulk"):
            queue.process(name, note)
        await queue.start_worker()
        await asyncio.wait_for(all_ran.wait(), 60)
        assert ran.index(ids["first"]) < ran.index(ids["second"]) < ran.index(ids["retried"])
        bulk_order = [int(i) for i in ran if int(i) > 20]
        assert bulk_order == sorted(bulk_order), "the waiting jobs kept their order"
        again = await queue.wait_for(ids["retried"], 10_000)
        assert again.attempts == 2  # its earlier attempt counts
        stalled = await queue.wait_for(ids["stalled"], 10_000)
        assert stalled.status is JobStatus.COMPLETED
        stats = await queue.get_stats()
        assert (stats.waiting, stats.delayed, stats.active) == (0, 0, 0)
        assert stats.completed == 1 + expected
    finally:
        await queue.close()


async def test_a_new_queue_is_written_in_layout_2_from_the_start(
    redis_url: str, queue_name: str
) -> None:
    async with JobQueue(queue_name, redis=redis_url) as queue:
        await queue.add_job("t", None)
    meta = redis_command(port_of(redis_url), "HGET", f"jq:{{{queue_name}}}:meta", "version")
    assert meta == b"2"
