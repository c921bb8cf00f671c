"""Partitioned queues on a real 3-primary cluster: 3 partitions, one on each primary."""

from __future__ import annotations

import uuid

import pytest

from jobqueue.partitions import partition_name
from jobqueue.testing_cluster import RedisCluster

from . import partition_cases as cases
from . import test_cluster as on_cluster

# The fixtures of the cluster tests: a 3-primary cluster per module, queues closed after.
cluster = on_cluster.cluster
make_queue = on_cluster.make_queue


def spread_name(cluster: RedisCluster, what: str) -> str:
    name = cluster.partitioned_name(f"{what}-{uuid.uuid4().hex[:6]}", 3)
    owners = {cluster.owner(cluster.slot_of(f"{{{partition_name(name, i)}}}")) for i in range(3)}
    assert owners == set(cluster.primary_ports())
    return name


async def test_thousands_of_jobs_run_exactly_once(
    cluster: RedisCluster, make_queue: cases.Make
) -> None:
    await cases.run_exactly_once(make_queue, spread_name(cluster, "once"), 3000)


@pytest.mark.parametrize("case", cases.CASES)
async def test_partitioned_queue(
    cluster: RedisCluster, make_queue: cases.Make, case: cases.Case
) -> None:
    await case(make_queue, spread_name(cluster, "parted"))
