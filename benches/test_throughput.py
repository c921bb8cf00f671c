"""pytest-benchmark view of ``throughput.py``: one drain and one enqueue test per system.

    .venv/bin/python -m pytest benches/ --benchmark-only

Not part of the test suite (``testpaths`` is ``tests``). Sizes come from the environment:
``BENCH_JOBS`` (default 20000), ``BENCH_ROUNDS`` (3), ``BENCH_SYSTEMS`` (all). The
jobs/s of each round are in the benchmark's ``extra_info``; the timings pytest-benchmark
shows include process start-up, which ``throughput.py`` keeps out of its numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pytest_benchmark")
pytest.importorskip("psutil")

import throughput  # after the skips: it needs psutil

from jobqueue.testing import RedisServer

JOBS = int(os.environ.get("BENCH_JOBS", "20000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SYSTEMS = os.environ.get("BENCH_SYSTEMS", ",".join(throughput.SYSTEMS)).split(",")

pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def args() -> Any:
    return throughput.parse_args(["--jobs", str(JOBS)])


def available(system: str, server: RedisServer) -> None:
    found = throughput.check(system)
    if found["event"] != "available":
        pytest.skip(f"{system} not installed: {found['error'].strip().splitlines()[-1]}")
    version = throughput.info(server.port, "server")["redis_version"]
    needed = found.get("redis_min")
    if needed and throughput.version_tuple(version) < throughput.version_tuple(needed):
        pytest.skip(f"{system} needs redis-server >= {needed}; this one is {version}")


@pytest.mark.parametrize("system", SYSTEMS)
def test_drain(benchmark: Any, server: RedisServer, args: Any, system: str) -> None:
    available(system, server)
    rates: list[float] = []

    def drain() -> None:
        rates.append(throughput.worker_pass(system, server, args, "drain", JOBS)["rate"])

    benchmark.pedantic(drain, rounds=ROUNDS, iterations=1)
    benchmark.extra_info["jobs_per_s"] = rates


@pytest.mark.parametrize("mode", ["single", "bulk"])
@pytest.mark.parametrize("system", SYSTEMS)
def test_enqueue(benchmark: Any, server: RedisServer, args: Any, system: str, mode: str) -> None:
    available(system, server)
    rates: list[float] = []

    def enqueue() -> None:
        throughput.flush(server.port)
        step_args = {"url": server.url, "mode": mode, "jobs": JOBS, "batch": args.batch}
        rates.append(throughput.run_once(system, "enqueue", step_args, args.timeout)["rate"])

    benchmark.pedantic(enqueue, rounds=ROUNDS, iterations=1)
    benchmark.extra_info["jobs_per_s"] = rates
