"""Redis memory per job, by job state and payload size.

    .venv/bin/python benches/memory.py [--jobs 20000] [--peers]

Starts its own redis-server (``jobqueue.testing.RedisServer``). For each state and each
payload size (``{"i": i, "s": "x" * n}``, n = 0, 100, 1,000), on an emptied server, it
puts ``--jobs`` jobs into that state with the default job options and reports
``INFO memory`` ``used_memory`` after minus before, divided by the jobs in that state:

- waiting: ``add_jobs`` in batches of 1,000;
- delayed: the same with ``delay`` one hour (the only option set);
- completed: a no-op processor (returns None); at most the default retention (the newest
  10,000) stay, so the run adds that many;
- failed: a processor that raises ``RuntimeError("boom")``, every attempt (the default 3,
  exponential backoff from 1 s), with the DLQ disabled (a queue setting, not a job option);
  retention as for completed;
- dlq: the same with the DLQ enabled (the default); the DLQ is never trimmed.

The baseline is taken after the queue has connected, loaded its scripts and started its
worker, so fixed costs stay out; what remains per job is broken down with
``MEMORY USAGE ... SAMPLES 0``: the job's keys (mean of up to 100 jobs of the state), the
state's list or sorted set, the events stream, and the rest (mostly the keyspace's bucket
array). The events stream is capped (2,000 entries of about 8 KB), so on a much larger
queue its share per job falls; the rest is the total minus the parts.

``--peers`` also bulk-adds ``--jobs`` waiting jobs (payload n = 100) through each peer
library that is installed (``make bench-peers``) and runs on this server's Redis version,
through the same adapters as ``benches/throughput.py``; the others are listed as skipped.
Prints the tables and writes ``benches/results/memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from jobqueue import DLQConfig, JobQueue, WorkerConfig
from jobqueue.config import DEFAULT_RETENTION
from jobqueue.testing import RedisServer, redis_command

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "memory.json"
QUEUE = "mem"
PREFIX = "jq"
PAYLOAD_SIZES = (0, 100, 1000)
STATES = ("waiting", "delayed", "completed", "failed", "dlq")
BATCH = 1000
DELAY_MS = 3_600_000
RETAINED = DEFAULT_RETENTION.count or 10_000
# The key that holds each state's ids.
STRUCTURE = {
    "waiting": "wait:2",
    "delayed": "delayed:2",
    "completed": "completed:2",
    "failed": "failed:2",
    "dlq": "dlq:2",
}
PEER_SYSTEMS = ("jobqueue", "arq", "saq", "rq", "bullmq", "streaq", "ardiq", "chasquimq")


def key(suffix: str) -> str:
    return f"{PREFIX}:{{{QUEUE}}}:{suffix}"


def command(port: int, *args: str) -> Any:
    reply = redis_command(port, *args)
    if isinstance(reply, RuntimeError):
        raise reply
    return reply


def used_memory(port: int) -> int:
    text = str(command(port, "INFO", "memory").decode())
    for line in text.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError("INFO memory has no used_memory")


def redis_version(port: int) -> str:
    text = str(command(port, "INFO", "server").decode())
    for line in text.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return "?"


def memory_usage(port: int, name: str) -> int:
    return int(command(port, "MEMORY", "USAGE", name, "SAMPLES", "0") or 0)


def state_count(port: int, state: str) -> int:
    name = key(STRUCTURE[state])
    return int(command(port, "LLEN" if state == "waiting" else "ZCARD", name))


def state_ids(port: int, state: str, n: int) -> list[str]:
    name = key(STRUCTURE[state])
    ids = command(port, "LRANGE" if state == "waiting" else "ZRANGE", name, "0", str(n - 1))
    return [i.decode() for i in ids]


def payloads(start: int, stop: int, size: int) -> list[dict[str, Any]]:
    return [{"i": i, "s": "x" * size} for i in range(start, stop)]


async def fill(port: int, url: str, state: str, jobs: int, size: int) -> dict[str, Any]:
    """Put ``jobs`` jobs into ``state`` on an empty server; the memory they take."""
    command(port, "FLUSHALL")
    if state in ("completed", "failed"):
        jobs = min(jobs, RETAINED)
    queue = JobQueue(
        QUEUE,
        redis=url,
        prefix=PREFIX,
        dlq=DLQConfig(enabled=state != "failed"),
        worker=WorkerConfig(concurrency=50, scheduler=False),
    )
    options = {"delay": DELAY_MS} if state == "delayed" else None

    async def noop(job: Any) -> None:
        return None

    async def boom(job: Any) -> None:
        raise RuntimeError("boom")

    queue.process("noop", noop if state == "completed" else boom)
    # Connect, load the scripts, record the layout and start the worker before the baseline.
    await queue.add_job("noop", {"warm": True}, delay=DELAY_MS)
    await queue.clear()
    working = state in ("completed", "failed", "dlq")
    if working:
        await queue.start_worker()
    await asyncio.sleep(0.2)
    before = used_memory(port)
    started = time.monotonic()
    for start in range(0, jobs, BATCH):
        batch = payloads(start, min(jobs, start + BATCH), size)
        await queue.add_jobs([("noop", p, options) if options else ("noop", p) for p in batch])
    if working:
        # Failing jobs wait out their backoff (1 s, then 2 s) between attempts.
        deadline = time.monotonic() + 120 + jobs / 500
        while state_count(port, state) < jobs:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{state}: {state_count(port, state)} of {jobs} after the wait")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # the last acks' events and replies
    elapsed = time.monotonic() - started
    after = used_memory(port)
    count = state_count(port, state)
    sample = state_ids(port, state, 100)
    # A job is its record and, while it has a run state (docs/redis-layout.md), that too.
    job_key = sum(
        memory_usage(port, key(f"j:{i}")) + memory_usage(port, key(f"j:{i}:s")) for i in sample
    ) / len(sample)
    encoding = command(port, "OBJECT", "ENCODING", key(f"j:{sample[0]}")).decode()
    structure = memory_usage(port, key(STRUCTURE[state])) / count
    events = memory_usage(port, key("events")) / count
    total = (after - before) / count
    await queue.close()
    return {
        "state": state,
        "payload": size,
        "jobs": count,
        "bytes_per_job": round(total, 1),
        "job_key": round(job_key, 1),
        "job_encoding": encoding,
        "structure": round(structure, 1),
        "events": round(events, 1),
        "other": round(total - job_key - structure - events, 1),
        "seconds": round(elapsed, 2),
    }


def measure_peers(port: int, url: str, jobs: int, version: str) -> list[dict[str, Any]]:
    """Waiting jobs (payload n = 100) bulk-added by each peer through its adapter."""
    sys.path.insert(0, str(HERE))
    import throughput  # the peers' processes and checks; needs the bench extra (psutil)

    rows: list[dict[str, Any]] = []
    for system in PEER_SYSTEMS:
        status = throughput.check(system)
        if status.get("event") != "available":
            rows.append({"system": system, "skipped": status.get("error", "unavailable")})
            continue
        needs = status.get("redis_min")
        if needs and throughput.version_tuple(version) < throughput.version_tuple(needs):
            rows.append({"system": system, "skipped": f"needs Redis {needs} (this is {version})"})
            continue
        throughput.flush(port)
        before = used_memory(port)
        try:
            throughput.run_once(
                system, "fill", {"url": url, "jobs": jobs, "batch": BATCH}, timeout=600
            )
        except throughput.StepError as exc:
            rows.append({"system": system, "skipped": str(exc)[-300:]})
            continue
        time.sleep(0.3)
        after = used_memory(port)
        rows.append(
            {
                "system": system,
                "version": status.get("version"),
                "jobs": jobs,
                "bytes_per_job": round((after - before) / jobs, 1),
            }
        )
    return rows


def print_tables(results: list[dict[str, Any]], peers: list[dict[str, Any]] | None) -> None:
    by = {(r["state"], r["payload"]): r for r in results}
    sizes = sorted({r["payload"] for r in results})
    states = [s for s in STATES if any(r["state"] == s for r in results)]
    print("bytes per job (used_memory delta / jobs in the state)")
    print(f"{'state':<10}" + "".join(f"{'payload ' + str(n):>14}" for n in sizes))
    for state in states:
        cells = [by.get((state, n)) for n in sizes]
        print(f"{state:<10}" + "".join(f"{c['bytes_per_job'] if c else '-':>14}" for c in cells))
    print()
    print(
        f"{'state':<10}{'payload':>8}{'jobs':>8}{'total':>9}{'job key':>9}{'encoding':>11}"
        f"{'struct':>8}{'events':>8}{'other':>8}"
    )
    for r in results:
        print(
            f"{r['state']:<10}{r['payload']:>8}{r['jobs']:>8}{r['bytes_per_job']:>9}"
            f"{r['job_key']:>9}{r['job_encoding']:>11}{r['structure']:>8}{r['events']:>8}"
            f"{r['other']:>8}"
        )
    if peers is not None:
        print()
        print("waiting jobs, payload 100, bulk-added through each library")
        for p in peers:
            if "skipped" in p:
                print(f"  {p['system']:<10} skipped: {p['skipped'].splitlines()[0][:100]}")
            else:
                print(f"  {p['system'] + ' ' + str(p['version']):<22}{p['bytes_per_job']:>8} B/job")


async def measure(port: int, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for state in args.states.split(","):
        for size in (int(n) for n in args.payloads.split(",")):
            row = await fill(port, url, state, args.jobs, size)
            print(
                f"  {state:<10} payload {size:>5}: {row['bytes_per_job']:>8} B/job "
                f"({row['jobs']} jobs, {row['seconds']} s)",
                flush=True,
            )
            results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--states", default=",".join(STATES))
    parser.add_argument("--payloads", default=",".join(map(str, PAYLOAD_SIZES)))
    parser.add_argument("--peers", action="store_true", help="also the peers' waiting jobs")
    args = parser.parse_args()
    with RedisServer() as server:
        version = redis_version(server.port)
        print(f"redis-server {version}, {args.jobs} jobs per state")
        results = asyncio.run(measure(server.port, server.url, args))
        peers = measure_peers(server.port, server.url, args.jobs, version) if args.peers else None
    print()
    print_tables(results, peers)
    RESULTS.parent.mkdir(exist_ok=True)
    out: dict[str, Any] = {"redis_version": version, "jobs": args.jobs, "results": results}
    if peers is not None:
        out["peers"] = peers
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
