"""Hostile data in Redis: a job damaged by hand fails that job with a reason, and the
worker and the other jobs carry on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobqueue import JobQueue, JobStatus, WorkerConfig
from jobqueue.testing import redis_command

from ..helpers import edit_record, port_of


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ({"data": "{not json"}, "unreadable"),
        ({"opts": "[]"}, "unreadable"),
        ({"name": ""}, "no processor is registered"),
        ({"data": ""}, "unreadable"),
        ({"run": "many"}, None),
        ({"created_at": "yesterday"}, None),
        ({"priority": "urgent"}, None),
    ],
)
async def test_a_damaged_job_fails_that_job_only(
    make_queue: Callable[..., JobQueue],
    redis_url: str,
    damage: dict[str, str],
    reason: str | None,
) -> None:
    queue = make_queue(worker=WorkerConfig(concurrency=1))
    queue.process("t", lambda job: "ran")
    damaged = await queue.add_job("t", {"n": 1}, attempts=1)
    port = port_of(redis_url)
    if "run" in damage:  # a run state that is not one
        redis_command(port, "SET", f"jq:{{{queue.name}}}:j:{damaged}:s", damage["run"])
    else:
        edit_record(port, queue.name, damaged, **damage)
    healthy = await queue.add_job("t", None)
    await queue.start_worker()
    info = await queue.wait_for(damaged, 10_000)
    if reason is None:  # a damaged bookkeeping field is repaired; the job still runs
        assert info.status is JobStatus.COMPLETED
    else:
        assert info.status is JobStatus.DLQ
        assert reason in (info.failed_reason or "")
    assert (await queue.wait_for(healthy, 10_000)).return_value == "ran"


async def test_an_id_without_its_job_hash_is_skipped(
    make_queue: Callable[..., JobQueue], redis_url: str
) -> None:
    queue = make_queue()
    queue.process("t", lambda job: "ran")
    redis_command(port_of(redis_url), "RPUSH", f"jq:{{{queue.name}}}:wait:2", "ghost")
    real = await queue.add_job("t", None)
    await queue.start_worker()
    assert (await queue.wait_for(real, 10_000)).return_value == "ran"
    assert await queue.get_job_status("ghost") is None
    assert (await queue.get_stats()).active == 0
