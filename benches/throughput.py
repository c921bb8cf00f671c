"""Side-by-side benchmark: jobqueue and its peers on one redis-server.

    .venv/bin/python benches/throughput.py [--jobs 20000] [--repeats 3] [--systems jobqueue,arq]

Peers come from the ``bench`` extra (``make bench-peers`` installs it, and gives arq,
bullmq and ardiq venvs of their own under ``.venv/bench-peers/<system>/``, since arq needs
redis-py < 6, bullmq pins an old croniter and ardiq needs Python >= 3.12). A system whose
library is not installed is skipped with a note. Every step runs in a process of its own
(``benches/peers/runner.py``, with the system's python): enqueue clients, fill, producer
and one worker process per step.

Per system, after a FLUSHALL before each step:

- enqueue: ``--jobs`` single awaited enqueues one by one; bulk: the same in batches of
  ``--batch`` through the library's bulk API (or its fastest documented way).
- concurrent single adds: ``--jobs`` single awaited enqueues from ``--tasks`` concurrent
  asyncio tasks sharing one client (a web service's request handlers); threads: the same
  from ``--threads`` threads through a blocking client (jobqueue's ``jobqueue.sync``
  facade; rq's client). Both after a few warm-up adds that open the connections.
- drain: ``--jobs`` pre-enqueued no-op jobs (payload ``{"i": i, "s": "x" * 100}``) through
  one worker process at ``--concurrency``; from the ``go`` sent to the worker process (it
  has imported and set up everything, not started consuming) until the processor has been
  called for the last job. Worker peak RSS, CPU share of the worker and of redis-server
  (psutil cpu_times over the drain / wall time) and Redis commands per job
  (``total_commands_processed``; counts commands run inside Lua scripts too), round trips
  per job (``total_reads_processed``: reads from client sockets) and EVALSHA calls per job
  are taken over the same window.
- latency: a producer adds ``--rate`` jobs/s for ``--seconds`` into an idle worker; time
  from just before the enqueue call (time.time() in the producer) to processor start
  (time.time() in the worker).
- cpu: ``--cpu-jobs`` jobs each doing about 1 ms of pure-Python work (calibrated here).

Systems are interleaved (A B A B ...) for ``--repeats`` rounds; the table shows medians.
At the start of every round, the ``redis-benchmark`` ceiling: EVALSHA of ``return 1`` from
one client, unpipelined and with ``-P 50`` (median reported). Writes
``benches/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import psutil
from _ceiling import redis_benchmark_ceiling

from jobqueue.testing import RedisServer, redis_command

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNNER = HERE / "peers" / "runner.py"
PEER_VENVS = ROOT / ".venv" / "bench-peers"
RESULTS = HERE / "results" / "throughput.json"
PREFIX = "@@bench "
STEPS = (
    "enqueue_single",
    "enqueue_bulk",
    "enqueue_concurrent",
    "enqueue_threads",
    "drain",
    "latency",
    "cpu",
)
SYSTEMS = ("jobqueue", "arq", "saq", "rq", "bullmq", "streaq", "ardiq", "chasquimq")


class StepError(RuntimeError):
    pass


# -- systems ----------------------------------------------------------------------------------


def interpreter(system: str) -> str:
    """The python of the system's own venv if there is one, else this one."""
    own = PEER_VENVS / system / "bin" / "python"
    return str(own) if own.exists() else sys.executable


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def check(system: str) -> dict[str, Any]:
    """``available`` (with version, bulk note, settings) or ``unavailable`` (with why)."""
    python = interpreter(system)
    try:
        out = subprocess.run(
            [python, str(RUNNER), system, "check"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"event": "unavailable", "error": repr(exc)}
    for line in out.stdout.splitlines():
        if line.startswith(PREFIX):
            return {**json.loads(line[len(PREFIX) :]), "interpreter": python}
    return {"event": "unavailable", "error": (out.stderr.strip() or "no answer")[-500:]}


# -- processes --------------------------------------------------------------------------------


class Step:
    """One runner process; its ``@@bench`` lines arrive as events on a queue."""

    def __init__(self, system: str, role: str, args: dict[str, Any]) -> None:
        self.system, self.role = system, role
        self.stderr: IO[str] = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [interpreter(system), str(RUNNER), system, role, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
            cwd=ROOT,
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(PREFIX):
                self.events.put(json.loads(line[len(PREFIX) :]))
        self.events.put(None)  # EOF

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-1500:]

    def expect(
        self, name: str, timeout: float, tick: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Wait for event ``name``; call ``tick`` about every 10 ms meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepError(f"{self.system} {self.role}: no {name!r} in {timeout:g} s")
            try:
                event = self.events.get(timeout=min(left, 0.01))
            except queue.Empty:
                if tick is not None:
                    tick()
                continue
            if event is None:
                self.process.wait()
                raise StepError(
                    f"{self.system} {self.role} exited ({self.process.returncode}) "
                    f"before {name!r}:\n{self._stderr_tail()}"
                )
            if event.get("event") == name:
                return event
            if event.get("event") == "error":
                raise StepError(f"{self.system} {self.role}: {event.get('error')}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def close(self) -> None:
        """Ask to stop, then SIGTERM, then SIGKILL."""
        if self.process.poll() is None:
            self.send("stop")
            for action in (None, self.process.terminate, self.process.kill):
                if action is not None:
                    action()
                try:
                    self.process.wait(timeout=15 if action is None else 5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        self.stderr.close()

    def __enter__(self) -> Step:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_once(system: str, role: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    with Step(system, role, args) as step:
        return step.expect("result", timeout)


# -- redis ------------------------------------------------------------------------------------


def info(port: int, section: str) -> dict[str, str]:
    reply = redis_command(port, "INFO", section)
    if not isinstance(reply, bytes):
        raise RuntimeError(f"INFO {section} answered {reply!r}")
    fields = {}
    for line in reply.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key] = value
    return fields


def command_counts(port: int) -> dict[str, int]:
    """Calls per command (``INFO commandstats``), the total processed (both count the
    commands a Lua script runs too) and the reads from client sockets."""
    counts = {
        key.removeprefix("cmdstat_"): int(re.search(r"calls=(\d+)", value).group(1))  # type: ignore[union-attr]
        for key, value in info(port, "commandstats").items()
    }
    stats = info(port, "stats")
    counts["_total"] = int(stats["total_commands_processed"])
    # One read event per request a client sends (or per pipelined chunk): round trips.
    counts["_reads"] = int(stats.get("total_reads_processed", 0))
    return counts


def flush(port: int) -> None:
    redis_command(port, "FLUSHALL")
    redis_command(port, "SCRIPT", "FLUSH")  # every system loads its scripts afresh


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def busy_seconds() -> float:
    """CPU seconds all cores of the machine have spent not idle."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def family(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


# -- measurements -----------------------------------------------------------------------------


def calibrate_busy(target_s: float = 0.001) -> int:
    """Iterations of runner.busy() that take about ``target_s`` in this interpreter."""
    sys.path.insert(0, str(RUNNER.parent))
    from runner import busy

    iterations = 10_000
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(20):
            busy(iterations)
        per_call = (time.perf_counter() - started) / 20
        iterations = max(1, int(iterations * target_s / per_call))
    return iterations


def worker_pass(
    system: str,
    server: RedisServer,
    args: argparse.Namespace,
    mode: str,
    jobs: int,
    cpu_iterations: int = 0,
) -> dict[str, Any]:
    """Pre-enqueue ``jobs``, start a worker on them and time it; with resource samples."""
    flush(server.port)
    run_once(
        system,
        "fill",
        {"url": server.url, "jobs": jobs, "batch": args.batch},
        args.timeout,
    )
    worker_args = {
        "url": server.url,
        "mode": mode,
        "expect": jobs,
        "concurrency": args.concurrency,
        "cpu_iterations": cpu_iterations,
    }
    with Step(system, "worker", worker_args) as worker:
        worker.expect("ready", args.timeout)
        redis_proc = [psutil.Process(int(info(server.port, "server")["process_id"]))]
        peak_rss = 0

        def sample() -> None:
            nonlocal peak_rss
            rss = 0
            for p in family(worker.process.pid):
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
            peak_rss = max(peak_rss, rss)

        sample()
        commands_before = command_counts(server.port)
        worker_cpu_before = cpu_seconds(family(worker.process.pid))
        redis_cpu_before = cpu_seconds(redis_proc)
        machine_before = busy_seconds()
        started = time.time()
        worker.send("go")
        done = worker.expect("done", args.timeout, tick=sample)
        wall = time.time() - started
        worker_cpu = cpu_seconds(family(worker.process.pid)) - worker_cpu_before
        redis_cpu = cpu_seconds(redis_proc) - redis_cpu_before
        machine_busy = busy_seconds() - machine_before
        sample()
        commands_after = command_counts(server.port)
    elapsed = done["at"] - started
    per_job = {
        name: (commands_after[name] - commands_before.get(name, 0)) / jobs
        for name in commands_after
        if commands_after[name] != commands_before.get(name, 0)
    }
    return {
        "rate": jobs / elapsed,
        "seconds": elapsed,
        "peak_rss_mb": peak_rss / 2**20,
        "worker_cpu_share": worker_cpu / wall,
        "redis_cpu_share": redis_cpu / wall,
        "worker_cpu_us_per_job": worker_cpu / jobs * 1e6,
        "redis_cpu_us_per_job": redis_cpu / jobs * 1e6,
        # Everything else the machine did meanwhile (this harness included): a noise gauge.
        "other_cpu_share": max(0.0, machine_busy - worker_cpu - redis_cpu) / wall,
        "commands_per_job": per_job.pop("_total", 0.0),
        "round_trips_per_job": per_job.pop("_reads", 0.0),
        "evalsha_per_job": per_job.get("evalsha", 0.0) + per_job.get("eval", 0.0),
        "command_mix_per_job": dict(sorted(per_job.items(), key=lambda kv: -kv[1])[:12]),
    }


def latency_pass(system: str, server: RedisServer, args: argparse.Namespace) -> dict[str, Any]:
    flush(server.port)
    total = int(args.rate * args.seconds)
    worker_args = {
        "url": server.url,
        "mode": "latency",
        "expect": total,
        "concurrency": args.concurrency,
    }
    with Step(system, "worker", worker_args) as worker:
        worker.expect("ready", args.timeout)
        worker.send("go")
        time.sleep(1.0)  # let it start and go idle
        produced = run_once(
            system,
            "produce",
            {"url": server.url, "rate": args.rate, "seconds": args.seconds},
            args.timeout + args.seconds,
        )
        done = worker.expect("done", args.timeout)
    return {
        "p50_ms": done["p50_ms"],
        "p99_ms": done["p99_ms"],
        "max_ms": done["max_ms"],
        "mean_ms": done["mean_ms"],
        "offered_rate": args.rate,
        "achieved_enqueue_rate": produced["rate"],
    }


def measure(
    system: str, server: RedisServer, args: argparse.Namespace, cpu_iterations: int
) -> dict[str, Any]:
    """One round of every measurement for one system; a failing step is recorded and the
    others still run."""
    out: dict[str, Any] = {}
    steps: dict[str, Callable[[], Any]] = {
        "enqueue_single": lambda: run_once(
            system,
            "enqueue",
            {"url": server.url, "mode": "single", "jobs": args.jobs, "batch": args.batch},
            args.timeout,
        )["rate"],
        "enqueue_bulk": lambda: run_once(
            system,
            "enqueue",
            {"url": server.url, "mode": "bulk", "jobs": args.jobs, "batch": args.batch},
            args.timeout,
        )["rate"],
        # Systems without such a client answer "unsupported": no rate, the cell stays "-".
        "enqueue_concurrent": lambda: run_once(
            system,
            "enqueue",
            {"url": server.url, "mode": "concurrent", "jobs": args.jobs, "tasks": args.tasks},
            args.timeout,
        ).get("rate"),
        "enqueue_threads": lambda: run_once(
            system,
            "enqueue",
            {"url": server.url, "mode": "threads", "jobs": args.jobs, "tasks": args.threads},
            args.timeout,
        ).get("rate"),
        "drain": lambda: worker_pass(system, server, args, "drain", args.jobs),
        "latency": lambda: latency_pass(system, server, args),
        "cpu": lambda: worker_pass(system, server, args, "cpu", args.cpu_jobs, cpu_iterations)[
            "rate"
        ],
    }
    for name, step in steps.items():
        if name not in args.steps:
            continue
        flush(server.port)
        try:
            out[name] = step()
        except StepError as exc:
            print(f"  {system} {name} failed: {exc}", file=sys.stderr)
            out[name] = {"error": str(exc)[-1000:]}
    flush(server.port)
    return out


# -- summary ----------------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values.append(float(value))
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    fields = {
        "enqueue_single": ("enqueue_single",),
        "enqueue_bulk": ("enqueue_bulk",),
        "enqueue_concurrent": ("enqueue_concurrent",),
        "enqueue_threads": ("enqueue_threads",),
        "drain": ("drain", "rate"),
        "latency_p50_ms": ("latency", "p50_ms"),
        "latency_p99_ms": ("latency", "p99_ms"),
        "latency_max_ms": ("latency", "max_ms"),
        "cpu": ("cpu",),
        "peak_rss_mb": ("drain", "peak_rss_mb"),
        "worker_cpu_share": ("drain", "worker_cpu_share"),
        "redis_cpu_share": ("drain", "redis_cpu_share"),
        "worker_cpu_us_per_job": ("drain", "worker_cpu_us_per_job"),
        "redis_cpu_us_per_job": ("drain", "redis_cpu_us_per_job"),
        "other_cpu_share": ("drain", "other_cpu_share"),
        "commands_per_job": ("drain", "commands_per_job"),
        "round_trips_per_job": ("drain", "round_trips_per_job"),
        "evalsha_per_job": ("drain", "evalsha_per_job"),
    }
    summary: dict[str, Any] = {name: median_of(runs, *path) for name, path in fields.items()}
    for name in ("enqueue_single", "enqueue_concurrent", "enqueue_threads"):
        rates = [r[name] for r in runs if isinstance(r.get(name), (int, float))]
        summary[f"{name}_range"] = [min(rates), max(rates)] if rates else None
    errors = sorted(
        {k for run in runs for k, v in run.items() if isinstance(v, dict) and "error" in v}
    )
    if errors:
        summary["failed_steps"] = errors
    return summary


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(report: dict[str, Any]) -> str:
    columns = [
        ("system", None, "<10"),
        ("enq/s", "enqueue_single", ",.0f"),
        ("bulk/s", "enqueue_bulk", ",.0f"),
        ("conc/s", "enqueue_concurrent", ",.0f"),
        ("thrd/s", "enqueue_threads", ",.0f"),
        ("drain/s", "drain", ",.0f"),
        ("jq/peer", None, ">7"),
        ("p50 ms", "latency_p50_ms", ".1f"),
        ("p99 ms", "latency_p99_ms", ".1f"),
        ("max ms", "latency_max_ms", ".1f"),
        ("cpu/s", "cpu", ",.0f"),
        ("RSS MB", "peak_rss_mb", ".0f"),
        ("wrk CPU", "worker_cpu_share", ".0%"),
        ("rds CPU", "redis_cpu_share", ".0%"),
        ("oth CPU", "other_cpu_share", ".0%"),
        ("cmd/job", "commands_per_job", ".2f"),
        ("rt/job", "round_trips_per_job", ".2f"),
    ]
    widths = [max(len(c[0]), 9) for c in columns]
    widths[0] = 10
    lines = [
        "  ".join(
            c[0].rjust(w) if i else c[0].ljust(w)
            for i, (c, w) in enumerate(zip(columns, widths, strict=True))
        )
    ]
    systems = report["systems"]
    jq_drain = systems.get("jobqueue", {}).get("summary", {}).get("drain")
    for name, entry in systems.items():
        if "skipped" in entry:
            lines.append(f"{name:<10}  skipped: {entry['skipped']}")
            continue
        s = entry["summary"]
        cells = [name.ljust(widths[0])]
        for (title, key, spec), width in zip(columns[1:], widths[1:], strict=True):
            if title == "jq/peer":
                ratio = jq_drain / s["drain"] if jq_drain and s.get("drain") else None
                cells.append(fmt(ratio, ".2f").rjust(width) + ("x" if ratio else ""))
            else:
                cells.append(fmt(s.get(key), spec).rjust(width))
        lines.append("  ".join(cells))
        if s.get("failed_steps"):
            lines.append(f"{'':<10}  failed steps: {', '.join(s['failed_steps'])} (see JSON)")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000, help="enqueue and drain size")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=100, help="concurrent adds: asyncio tasks")
    parser.add_argument("--threads", type=int, default=16, help="concurrent adds: threads")
    parser.add_argument("--rate", type=int, default=1_000, help="latency: jobs/s offered")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency: for how long")
    parser.add_argument("--cpu-jobs", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help="a subset of: " + ",".join(STEPS),
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per step, seconds")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--no-ceiling", action="store_true", help="skip redis-benchmark")
    args = parser.parse_args(argv)
    args.steps = set(args.steps.split(","))
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(names) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown systems: {', '.join(sorted(unknown))}")
    systems: dict[str, dict[str, Any]] = {}
    for name in names:
        found = check(name)
        if found["event"] == "available":
            systems[name] = {k: v for k, v in found.items() if k != "event"} | {"runs": []}
            print(f"{name}: {found['version']} (python {found['python']})")
        else:
            reason = found["error"].strip().splitlines()[-1]
            if "ModuleNotFoundError" in reason:
                reason += " (make bench-peers installs the peers)"
            systems[name] = {"skipped": reason}
            print(f"{name}: skipped ({systems[name]['skipped']})")
    cpu_iterations = calibrate_busy()
    report: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "load_average_at_start": os.getloadavg(),
        },
        "settings": {
            k: sorted(v) if isinstance(v, set) else (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
        }
        | {"cpu_busy_iterations": cpu_iterations},
        "systems": systems,
    }
    with RedisServer() as server:
        redis_version = info(server.port, "server")["redis_version"]
        report["machine"]["redis_version"] = redis_version
        for name, entry in systems.items():
            needed = entry.get("redis_min")
            if needed and version_tuple(redis_version) < version_tuple(needed):
                systems[name] = {
                    "skipped": f"needs redis-server >= {needed}; this one is {redis_version}",
                    "version": entry["version"],
                }
                print(f"{name}: skipped ({systems[name]['skipped']})")
        active = [name for name, entry in systems.items() if "skipped" not in entry]
        ceilings = []
        for repeat in range(args.repeats):
            if not args.no_ceiling:
                flush(server.port)
                ceilings.append(redis_benchmark_ceiling(server.port, args.jobs) or {})
            for name in active:
                print(f"round {repeat + 1}/{args.repeats}: {name}", flush=True)
                systems[name]["runs"].append(measure(name, server, args, cpu_iterations))
        for name in active:
            systems[name]["summary"] = summarize(systems[name]["runs"])
        if ceilings and all(ceilings):
            report["ceiling_runs"] = ceilings
            report["ceiling"] = {
                label: statistics.median(c[label] for c in ceilings) for label in ceilings[0]
            }
    return report


def print_report(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print()
    print(
        f"{settings['jobs']:,} jobs, concurrency {settings['concurrency']}, "
        f"{settings['repeats']} round(s), medians; redis {report['machine']['redis_version']}, "
        f"{report['machine']['cpu_count']} CPUs, python {report['machine']['python']}"
    )
    print(table(report))
    print(
        "enq/s: single awaited enqueues; bulk/s: batches of "
        f"{settings['batch']:,}; conc/s: single awaited enqueues from {settings['tasks']} "
        f"asyncio tasks; thrd/s: blocking single enqueues from {settings['threads']} threads; "
        "drain/s and cpu/s: one worker process; jq/peer: drain ratio"
    )
    print_concurrent(report)
    print(
        "wrk/rds/oth CPU: share of one core during drain (oth: all other processes, a noise "
        "gauge); cmd/job: Redis commands per drained job (incl. those inside Lua scripts); "
        "rt/job: reads from client sockets per drained job (~round trips, all clients)"
    )
    for name, entry in report["systems"].items():
        if "bulk" in entry and not entry["bulk"].startswith(("add", "enqueue_many")):
            print(f"  {name} bulk: {entry['bulk']}")
        if "notes" in entry:
            print(f"  {name}: {entry['notes']}")
    ceiling = report.get("ceiling")
    if ceiling:
        print(
            "redis-benchmark EVALSHA 'return 1', one client: "
            + ", ".join(f"{label} {rate:,.0f}/s" for label, rate in ceiling.items())
        )
        jq = report["systems"].get("jobqueue", {}).get("summary", {})
        if jq.get("enqueue_single") and ceiling.get("unpipelined"):
            share = jq["enqueue_single"] / ceiling["unpipelined"]
            report["jobqueue_single_vs_evalsha"] = share
            print(f"jobqueue single add_job = {share:.0%} of the unpipelined EVALSHA rate")
            if ceiling.get("bare_asyncio"):
                floor = ceiling["bare_asyncio"] / ceiling["unpipelined"]
                print(
                    f"a bare asyncio protocol doing the same EVALSHA reaches {floor:.0%} of it "
                    f"(jobqueue: {jq['enqueue_single'] / ceiling['bare_asyncio']:.0%} of that)"
                )
    jq = report["systems"].get("jobqueue", {}).get("summary", {})
    if jq.get("commands_per_job") is not None:
        print(
            f"jobqueue drain: {jq['round_trips_per_job']:.2f} round trips per job "
            f"(total_reads_processed), {jq['evalsha_per_job']:.2f} EVALSHA per job, "
            f"{jq['commands_per_job']:.2f} Redis commands per job (incl. those inside scripts)"
        )
    if jq.get("worker_cpu_us_per_job") is not None:
        print(
            f"jobqueue drain CPU per job: worker {jq['worker_cpu_us_per_job']:.1f} µs, "
            f"redis-server {jq['redis_cpu_us_per_job']:.1f} µs"
        )


def print_concurrent(report: dict[str, Any]) -> None:
    """Ranges over the rounds of the concurrent single adds, and jobqueue's ratios."""
    summaries = {
        name: entry["summary"] for name, entry in report["systems"].items() if "summary" in entry
    }
    for name, s in summaries.items():
        parts = [
            f"{label} {lo:,.0f}-{hi:,.0f}/s"
            for label, key in (
                ("sequential", "enqueue_single_range"),
                ("concurrent", "enqueue_concurrent_range"),
                ("threads", "enqueue_threads_range"),
            )
            if s.get(key)
            for lo, hi in [s[key]]
        ]
        if parts:
            print(f"  {name} single adds over the rounds: " + ", ".join(parts))
    jq = summaries.get("jobqueue", {})
    if not jq.get("enqueue_concurrent"):
        return
    peers = {n: s["enqueue_concurrent"] for n, s in summaries.items() if n != "jobqueue"}
    peers = {n: rate for n, rate in peers.items() if rate}
    line = f"jobqueue concurrent single adds: {jq['enqueue_concurrent']:,.0f}/s"
    if jq.get("enqueue_single"):
        line += f" = {jq['enqueue_concurrent'] / jq['enqueue_single']:.1f}x its sequential rate"
    if peers:
        best = max(peers, key=peers.__getitem__)
        line += f", {jq['enqueue_concurrent'] / peers[best]:.1f}x the best peer ({best})"
    print(line)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
