"""Partitioned queues on a real 3-primary cluster: 3 partitions, one on each primary."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from jobqueue import Backoff, JobQueue
from jobqueue.partitions import partition_name
from jobqueue.testing_cluster import RedisCluster

from . import partition_cases as cases


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as found:
        yield found


@pytest.fixture
async def make(cluster: RedisCluster) -> AsyncIterator[Callable[..., JobQueue]]:
    made: list[JobQueue] = []

    def make_queue(name: str, **kwargs: Any) -> JobQueue:
        kwargs.setdefault("default_job_options", {"backoff": Backoff.fixed(20)})
        q = JobQueue(name, redis=cluster.url, **kwargs)
        made.append(q)
        return q

    yield make_queue
    for q in made:
        await q.close(timeout=5000)


def spread_name(cluster: RedisCluster, what: str) -> str:
    name = cluster.partitioned_name(f"{what}-{uuid.uuid4().hex[:6]}", 3)
    owners = {cluster.owner(cluster.slot_of(f"{{{partition_name(name, i)}}}")) for i in range(3)}
    assert owners == set(cluster.primary_ports())
    return name


async def test_thousands_of_jobs_run_exactly_once(cluster: RedisCluster, make: cases.Make) -> None:
    await cases.run_exactly_once(make, spread_name(cluster, "once"), 3000)


async def test_jobs_are_found_by_id(cluster: RedisCluster, make: cases.Make) -> None:
    await cases.by_id(make, spread_name(cluster, "ids"))


async def test_custom_ids_and_idempotency_keys_dedupe(
    cluster: RedisCluster, make: cases.Make
) -> None:
    await cases.dedupe(make, spread_name(cluster, "dedupe"))


async def test_a_group_stays_in_one_partition(cluster: RedisCluster, make: cases.Make) -> None:
    await cases.groups_stay_in_one_partition(make, spread_name(cluster, "groups"))


async def test_a_mismatched_partition_count_is_refused(
    cluster: RedisCluster, make: cases.Make
) -> None:
    await cases.mismatch_refused(make, spread_name(cluster, "mismatch"))


async def test_admin_calls_fan_out(cluster: RedisCluster, make: cases.Make) -> None:
    await cases.fan_out(make, spread_name(cluster, "fan"))
