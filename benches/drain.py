"""Drain benchmark: N pre-enqueued no-op jobs through one worker process.

    .venv/bin/python benches/drain.py [--jobs 20000] [--concurrency 50] [--groups 1000]
        [--observe none|otel|prometheus|both] [--only-ungrouped]

Three phases, each repeated, alternating so that the machine's noise hits them alike:
ungrouped jobs; the same jobs spread over `--groups` groups without limits; and the same
with a concurrency of 1 per group (the default group limit).

The worker runs in its own process (as in production); this process enqueues, starts it
and watches the queue until it is empty. Prints jobs/s and writes
``benches/results/drain.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from _noop_worker import start_noop_worker

from jobqueue import JobQueue
from jobqueue.testing import RedisServer, redis_command

QUEUE = "bench-drain"
#: Jobs not finished yet: waiting ungrouped, active, and groups with work in the ring or
#: parked (a group leaves the ring once a fetch finds it empty). Key names of layout 2
#: (src/keys.rs); the script refuses to run on another layout rather than count nothing.
#: Active jobs are those below +inf: `active:2` also holds a pin there (lib.lua).
_LEFT = """
local b = ARGV[1]
if redis.call('HGET', b .. 'meta', 'version') ~= '2' then
  return redis.error_reply('bench-drain: the queue is not of layout 2')
end
return redis.call('LLEN', b .. 'wait:2') + redis.call('ZCARD', b .. 'prioritized:2')
  + redis.call('ZCOUNT', b .. 'active:2', '-inf', '(+inf') + redis.call('ZCARD', b .. 'groups:2')
  + redis.call('SCARD', b .. 'groups:parked:2')
"""


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


async def one_run(
    url: str, jobs: int, concurrency: int, groups: int, limit: int | None, observe: str = "none"
) -> float:
    async with JobQueue(QUEUE, redis=url) as queue:
        await queue.clear()
        await queue.set_default_group_limit(concurrency=limit)
        for start in range(0, jobs, 1000):
            await queue.add_jobs(
                [
                    (
                        "noop",
                        {"i": i, "s": "x" * 100},
                        {"group": f"g{i % groups}"} if groups else None,
                    )
                    for i in range(start, min(jobs, start + 1000))
                ]
            )
        await queue.pause()  # the worker starts idle; the clock starts at resume
        process, stop = await start_noop_worker(url, QUEUE, concurrency, observe=observe)
        started = time.perf_counter()
        await queue.resume()
        # get_stats walks every group: too heavy to poll every 5 ms beside the drain.
        base = f"jq:{{{QUEUE}}}:"
        while True:
            left = redis_command(port_of(url), "EVAL", _LEFT, "0", base)
            if isinstance(left, RuntimeError):
                raise left
            if left == 0:
                break
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        stop.set()
        process.join()
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument(
        "--observe",
        choices=["none", "otel", "prometheus", "both"],
        default="none",
        help="the worker's tracing/metrics adapters (see _noop_worker.observability)",
    )
    parser.add_argument("--only-ungrouped", action="store_true", help="the first phase only")
    args = parser.parse_args()
    phases: dict[str, tuple[int, int | None]] = {
        "drain_jobs_per_s": (0, None),
        "grouped_jobs_per_s": (args.groups, None),
        "grouped_limit_1_jobs_per_s": (args.groups, 1),
    }
    if args.only_ungrouped:
        phases = {"drain_jobs_per_s": (0, None)}
    rates: dict[str, list[float]] = {phase: [] for phase in phases}
    with RedisServer() as server:
        for _ in range(args.repeats):
            for phase, (groups, limit) in phases.items():
                run = one_run(server.url, args.jobs, args.concurrency, groups, limit, args.observe)
                rates[phase].append(asyncio.run(run))
    result = {"jobs": args.jobs, "concurrency": args.concurrency, "groups": args.groups, **rates}
    base = rates["drain_jobs_per_s"]
    for phase, runs in rates.items():
        # Each round's phases ran back to back: the ratio within a round is the steadier
        # figure on a shared machine, whose load swings between rounds.
        ratio = statistics.median(r / b for r, b in zip(runs, base, strict=True))
        listed = ", ".join(f"{r:,.0f}" for r in runs)
        print(
            f"{phase:<28}: median {statistics.median(runs):,.0f} jobs/s, {ratio:.0%} of "
            f"ungrouped (median of the rounds' ratios; runs: {listed})"
        )
    out = Path(__file__).parent / "results" / "drain.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
