"""Redis-side cost per job, counted in instructions: deterministic where wall-clock
benchmarks on a shared machine swing by a third.

    .venv/bin/python benches/redis_cost.py [--jobs 5000]

Runs redis-server under valgrind's callgrind (``apt-get install valgrind``), with counting
switched on only around each phase, and prints the instructions redis-server executed per
job for: single awaited ``add_job``, the same from 100 concurrent tasks (which coalesce
into batches) and from 16 threads through ``jobqueue.sync`` (batched natively), bulk
``add_jobs`` (batches of 1,000), the drain (fetch + ack + retention, one worker at
concurrency 50), and light load (each job added,
fetched and acknowledged alone: the per-call costs in full), then bulk add and drain of
jobs spread over 1,000 groups (without limits, and with a concurrency of 1 per group), and
of jobs added inside a trace (each record holding a W3C traceparent), and flows (one parent
with 10, then 20, children: add_flow and the drain per job; a child's and a parent's share
of the drain). Writes
``benches/results/redis_cost.json``. Use it to compare script changes: the same command
gives the same count within about 1%. ``--dumps DIR`` keeps callgrind's dumps there (the
drain's is the one whose ``desc: Trigger`` line says ``dump drain``), for
``callgrind_annotate --inclusive=yes``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jobqueue import Flow, JobQueue, QueueEvent, WorkerConfig
from jobqueue.sync import JobQueue as SyncJobQueue
from jobqueue.testing import RedisServer, redis_command

PAYLOAD = {"s": "x" * 100}
SINGLE_ADDS = 200
CONCURRENT_TASKS = 100
THREADS = 16
GROUPS = 1000


class CountedRedis:
    """redis-server under callgrind (through `RedisServer`'s wrapper); `count(name,
    phase)` returns the instructions the server ran during `phase`."""

    def __init__(self, valgrind: str, out_dir: Path) -> None:
        self.out_dir = out_dir
        # Script calls (EVALSHA + FCALL) per counted phase: how many jobs a call carried.
        self.calls: dict[str, int] = {}
        self.server = RedisServer(
            wrapper=[
                valgrind,
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out_dir}/cg.%p",
            ]
        ).start()
        assert self.server.pid is not None
        self.pid = self.server.pid

    def _control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )

    def script_calls(self) -> int:
        """EVALSHA and FCALL calls so far (INFO commandstats; sent outside counting)."""
        reply = redis_command(self.server.port, "INFO", "commandstats", timeout=60)
        assert isinstance(reply, bytes)
        found = re.findall(rb"cmdstat_(?:evalsha|fcall):calls=(\d+)", reply)
        return sum(int(n) for n in found)

    async def count(self, name: str, phase: Callable[[], Awaitable[None]]) -> int:
        calls = self.script_calls()
        self._control("--zero")
        self._control("--instr=on")
        await phase()
        self._control("--instr=off")
        self.calls[name] = self.script_calls() - calls
        self._control("--dump=" + name)
        marker = f"desc: Trigger: dump {name}\n"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for dump in self.out_dir.glob(f"cg.{self.pid}.*"):
                text = dump.read_text()
                if marker in text:
                    totals = next(line for line in text.splitlines() if line.startswith("totals:"))
                    return int(totals.split()[1])
            await asyncio.sleep(0.2)
        raise RuntimeError(f"callgrind wrote no dump for {name}")


async def add_in_batches(queue: JobQueue, jobs: int) -> None:
    """``jobs`` no-op jobs through ``add_jobs``, 1,000 a call."""
    for start in range(0, jobs, 1000):
        batch = range(start, min(jobs, start + 1000))
        await queue.add_jobs([("noop", {"i": i, **PAYLOAD}) for i in batch])


async def measure(server: CountedRedis, jobs: int) -> dict[str, float]:
    queue = JobQueue("bench-cost", redis=server.server.url, worker=WorkerConfig(concurrency=50))
    drained, finished_one = asyncio.Event(), asyncio.Event()
    done = 0

    def completed(job: Any) -> None:
        nonlocal done
        done += 1
        finished_one.set()
        if done % jobs == 0:
            drained.set()

    queue.on(QueueEvent.JOB_COMPLETED, completed)
    queue.process("noop", lambda job: None)
    # Connects, loads the scripts and records the layout outside the counted phases.
    await queue.add_job("noop", PAYLOAD)
    await queue.clear()

    async def single() -> None:
        for i in range(SINGLE_ADDS):
            await queue.add_job("noop", {"i": i, **PAYLOAD})

    async def concurrent() -> None:
        async def task(first: int) -> None:
            for i in range(first, first + jobs // CONCURRENT_TASKS):
                await queue.add_job("noop", {"i": i, **PAYLOAD})

        per_task = jobs // CONCURRENT_TASKS
        await asyncio.gather(*(task(t * per_task) for t in range(CONCURRENT_TASKS)))

    async def threads() -> None:
        def produce(first: int) -> None:
            for i in range(first, first + jobs // THREADS):
                blocking.add_job("noop", {"i": i, **PAYLOAD})

        def run() -> None:
            per_thread = jobs // THREADS
            pool = [
                threading.Thread(target=produce, args=(t * per_thread,)) for t in range(THREADS)
            ]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()

        await asyncio.to_thread(run)

    async def bulk() -> None:
        await add_in_batches(queue, jobs)

    async def drain() -> None:
        await queue.start_worker()
        await drained.wait()

    async def one_at_a_time() -> None:
        # A queue under light load: each job is added, fetched and acknowledged alone.
        for i in range(SINGLE_ADDS):
            finished_one.clear()
            await queue.add_job("noop", {"i": i, **PAYLOAD})
            await finished_one.wait()

    result = {"single_add_per_call": await server.count("single", single) / SINGLE_ADDS}
    await queue.clear()
    # An add opens the loop's connection (the first went on the native one), uncounted.
    await queue.add_job("noop", PAYLOAD)
    concurrent_jobs = jobs // CONCURRENT_TASKS * CONCURRENT_TASKS
    result["concurrent_add_per_job"] = (
        await server.count("concurrent", concurrent) / concurrent_jobs
    )
    await queue.clear()
    blocking = SyncJobQueue("bench-cost", redis=server.server.url)
    blocking.add_job("noop", PAYLOAD)  # connects, uncounted
    thread_jobs = jobs // THREADS * THREADS
    result["threads_add_per_job"] = await server.count("threads", threads) / thread_jobs
    await asyncio.to_thread(blocking.close)
    await queue.clear()
    result["bulk_add_per_job"] = await server.count("bulk", bulk) / jobs
    result["drain_per_job"] = await server.count("drain", drain) / jobs
    result["one_at_a_time_per_job"] = await server.count("alone", one_at_a_time) / SINGLE_ADDS

    async def grouped_bulk() -> None:
        for start in range(0, jobs, 1000):
            batch = range(start, min(jobs, start + 1000))
            await queue.add_jobs(
                [("noop", {"i": i, **PAYLOAD}, {"group": f"g{i % GROUPS}"}) for i in batch]
            )

    async def grouped_drain() -> None:
        await queue.resume()
        await drained.wait()

    for limit, suffix in ((None, ""), (1, "_limit_1")):
        await queue.set_default_group_limit(concurrency=limit)
        await queue.pause()
        done = 0
        drained.clear()
        result[f"grouped_bulk_add{suffix}_per_job"] = (
            await server.count(f"gbulk{suffix}", grouped_bulk) / jobs
        )
        result[f"grouped_drain{suffix}_per_job"] = (
            await server.count(f"gdrain{suffix}", grouped_drain) / jobs
        )
    await queue.close()

    # Jobs added inside a trace: each record carries a W3C traceparent (55 bytes).
    traced = JobQueue(
        "bench-cost-traced",
        redis=server.server.url,
        worker=WorkerConfig(concurrency=50),
        telemetry=_FixedTraceContext(),
    )
    traced_done = asyncio.Event()
    ran = 0

    def traced_completed(job: Any) -> None:
        nonlocal ran
        ran += 1
        if ran == jobs:
            traced_done.set()

    traced.on(QueueEvent.JOB_COMPLETED, traced_completed)
    traced.process("noop", lambda job: None)
    await traced.add_job("noop", PAYLOAD)  # connects, uncounted
    await traced.clear()

    async def traced_bulk() -> None:
        for start in range(0, jobs, 1000):
            batch = range(start, min(jobs, start + 1000))
            await traced.add_jobs([("noop", {"i": i, **PAYLOAD}) for i in batch])

    async def traced_drain() -> None:
        await traced.start_worker()
        await traced_done.wait()

    result["traced_bulk_add_per_job"] = await server.count("tbulk", traced_bulk) / jobs
    result["traced_drain_per_job"] = await server.count("tdrain", traced_drain) / jobs
    await traced.close()
    result.update(await measure_flows(server, jobs))
    return result


async def measure_flows(server: CountedRedis, jobs: int) -> dict[str, float]:
    """Flows of one parent with 10 and with 20 children (about ``jobs`` jobs each), added
    with add_flow (32 calls in flight) and drained. A child costs the difference of the
    two drains per added child; a parent, the rest of a flow's drain."""
    out: dict[str, float] = {}
    per_flow: dict[int, float] = {}
    for children in (10, 20):
        flows = jobs // (children + 1)
        add, drained = await flow_cost(server, flows, children)
        out[f"flow{children}_add_per_job"] = add / (flows * (children + 1))
        out[f"flow{children}_drain_per_job"] = drained / (flows * (children + 1))
        per_flow[children] = drained / flows
    out["flow_child_drain"] = (per_flow[20] - per_flow[10]) / 10
    out["flow_parent_drain"] = per_flow[10] - 10 * out["flow_child_drain"]
    return out


async def flow_cost(server: CountedRedis, flows: int, children: int) -> tuple[int, int]:
    """Instructions to add ``flows`` flows of one parent and ``children`` children, and to
    drain them."""
    queue = JobQueue(
        f"bench-cost-flows-{children}",
        redis=server.server.url,
        worker=WorkerConfig(concurrency=50),
    )
    all_done = asyncio.Event()
    finished = 0

    def completed(job: Any) -> None:
        nonlocal finished
        finished += 1
        if finished == flows * (children + 1):
            all_done.set()

    queue.on(QueueEvent.JOB_COMPLETED, completed)
    queue.process("noop", lambda job: None)
    await queue.add_job("noop", PAYLOAD)  # connects, uncounted
    await queue.clear()
    slots = asyncio.Semaphore(32)

    async def add_one(i: int) -> None:
        async with slots:
            kids = [Flow("noop", {"i": k, **PAYLOAD}) for k in range(children)]
            await queue.add_flow(Flow("noop", {"i": i, **PAYLOAD}, kids))

    async def add() -> None:
        await asyncio.gather(*(add_one(i) for i in range(flows)))

    async def drain() -> None:
        await queue.start_worker()
        await all_done.wait()

    added = await server.count(f"fadd{children}", add)
    drained = await server.count(f"fdrain{children}", drain)
    await queue.close()
    return added, drained


class _FixedTraceContext:
    """A tracer (jobqueue.observability.TraceContextTelemetry) whose adds all carry one
    W3C traceparent, and whose spans do nothing: what Redis pays for traced jobs."""

    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> Any:
        return self

    def start_send_span(self, name: str, attributes: dict[str, Any]) -> Any:
        return self

    def trace_context(self, span: Any) -> str:
        return "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    def start_process_span(self, name: str, attributes: dict[str, Any], ctx: Any) -> Any:
        return self

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def record_exception(self, error: BaseException) -> None:
        pass

    def end(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument(
        "--dumps",
        type=Path,
        help="keep callgrind's dumps (one per phase) in this directory, for callgrind_annotate",
    )
    args = parser.parse_args()
    valgrind = shutil.which("valgrind")
    if valgrind is None or shutil.which("callgrind_control") is None:
        sys.exit("redis_cost.py needs valgrind (apt-get install valgrind)")
    with contextlib.ExitStack() as stack:
        if args.dumps is None:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            out_dir = args.dumps.resolve()
            out_dir.mkdir(parents=True, exist_ok=True)
        server = CountedRedis(valgrind, out_dir)
        try:
            result = asyncio.run(measure(server, args.jobs))
        finally:
            server.server.stop()
    labels = {
        "single_add_per_call": "single add_job, per call",
        "concurrent_add_per_job": "add_job from 100 tasks, per job",
        "threads_add_per_job": "sync add_job from 16 threads",
        "bulk_add_per_job": "add_jobs (batch 1000), per job",
        "drain_per_job": "drain (fetch + ack), per job",
        "one_at_a_time_per_job": "light load (add, fetch, ack alone)",
        "grouped_bulk_add_per_job": "add_jobs, 1,000 groups, per job",
        "grouped_drain_per_job": "drain, 1,000 groups, per job",
        "grouped_bulk_add_limit_1_per_job": "add_jobs, groups of limit 1",
        "grouped_drain_limit_1_per_job": "drain, groups of limit 1",
        "traced_bulk_add_per_job": "add_jobs with a trace context",
        "traced_drain_per_job": "drain of traced jobs",
        "flow10_add_per_job": "add_flow, 1 + 10, per job",
        "flow10_drain_per_job": "drain of flows 1 + 10, per job",
        "flow20_add_per_job": "add_flow, 1 + 20, per job",
        "flow20_drain_per_job": "drain of flows 1 + 20, per job",
        "flow_child_drain": "drain, per flow child",
        "flow_parent_drain": "drain, per flow parent",
    }
    for key, label in labels.items():
        print(f"{label:<32}: {result[key]:>10,.0f} redis-server instructions")
    print("script calls per phase:", ", ".join(f"{k} {v}" for k, v in server.calls.items()))
    out = Path(__file__).parent / "results" / "redis_cost.json"
    out.parent.mkdir(exist_ok=True)
    report = {"jobs": args.jobs, **result, "script_calls": server.calls}
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
