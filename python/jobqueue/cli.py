"""The ``jobqueue`` command: run a worker, or look at and manage a queue from the shell.

jobqueue worker app.tasks:queue --concurrency 50 [--metrics-port 9100]
jobqueue stats app.tasks:queue          (or a queue name, with --redis URL)
jobqueue jobs my-queue --status failed --limit 20
jobqueue workers my-queue               (the live workers, from their heartbeats)
jobqueue schedules my-queue
jobqueue dlq | retry | pause | resume | drain ...

Results print as tables; --json prints JSON for scripts. The options --redis, --log-level
and --json may come before or after the command.
jobqueue doctor my-queue                (Redis settings that can lose jobs, with fixes)
jobqueue group my-queue tenant-42 [--pause | --resume] [--concurrency 2] [--rate 10/1000]
jobqueue concurrency my-queue 100        (or "none")
jobqueue dashboard [my-queue ...] --port 8000   (the `dashboard` extra; no name: every queue)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._native import __version__, partition_count
from .cli_output import render
from .errors import JobQueueError
from .events import QueueEvent
from .models import HealthReport, JobInfo, JobStatus, ScheduleInfo
from .partitions import check_stored
from .queue import JobQueue

logger = logging.getLogger("jobqueue")


def load_queue(target: str, redis_url: str | None, partitions: int | None = None) -> JobQueue:
    """``module:attribute`` names a JobQueue in the user's code; anything else is a queue
    name, reached at ``redis_url`` (default: the environment, see RedisConfig), with
    ``partitions`` (default 1; see `open_queue()`)."""
    if ":" not in target:
        return JobQueue(target, redis=redis_url, partitions=partitions or 1)
    if partitions is not None:
        raise SystemExit("--partitions is for a queue name; a JobQueue of your code has its own")
    module_name, _, attribute = target.partition(":")
    sys.path.insert(0, ".")
    module = importlib.import_module(module_name)
    queue = getattr(module, attribute, None)
    if not isinstance(queue, JobQueue):
        raise SystemExit(f"{target} is not a JobQueue (got {type(queue).__name__})")
    return queue


async def run_worker(
    queue: JobQueue,
    concurrency: int | None,
    metrics_port: int | None = None,
    metrics_addr: str = "0.0.0.0",
) -> None:
    if concurrency is not None:
        worker = dataclasses.replace(queue.config.worker, concurrency=concurrency)
        queue.config = dataclasses.replace(queue.config, worker=worker)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop(signame: str) -> None:
        if not stopping:
            logger.info("jobqueue: %s received, finishing running jobs", signame)
            stopping.append(asyncio.create_task(queue.close()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)

    def on_failed(job: Any, error: BaseException | None) -> None:
        logger.warning("jobqueue: job %s (%s) failed: %s", job.id, job.name, error)

    queue.on(QueueEvent.JOB_FAILED, on_failed)
    server = None if metrics_port is None else _serve_metrics(queue, metrics_port, metrics_addr)
    try:
        await _work(queue, stopping)
    finally:
        if server is not None:
            server.close()
            _metrics_module().process_exit()


def _metrics_module() -> Any:
    try:
        from .contrib import prometheus
    except ImportError as exc:
        raise SystemExit(
            f"jobqueue: --metrics-port needs prometheus_client ({exc}): "
            "pip install 'jobqueue[prometheus]'"
        ) from None
    return prometheus


def _serve_metrics(queue: JobQueue, port: int, addr: str) -> Any:
    """Serve /metrics: the queue's metrics (a PrometheusMetrics adapter unless it has a
    metrics adapter) and its Redis state at scrape time."""
    prometheus = _metrics_module()
    if queue.metrics is None:
        queue.metrics = prometheus.PrometheusMetrics()
    server = prometheus.serve_metrics(port, addr, queues=[queue])
    logger.info("jobqueue: metrics on http://%s:%d/metrics", addr, server.port)
    return server


async def _work(queue: JobQueue, stopping: list[asyncio.Task[None]]) -> None:
    await queue.start_worker()
    logger.info(
        "jobqueue: worker %s started on queue %r (concurrency %d, processors: %s)",
        queue.worker_id,
        queue.name,
        queue.config.worker.concurrency,
        ", ".join(sorted(queue._processors)) or "none",
    )
    await queue.run_worker()
    if stopping:
        await stopping[0]
    logger.info("jobqueue: worker stopped")


def _findings_json(report: HealthReport) -> list[dict[str, Any]]:
    """The report's Redis findings, each with its fix."""
    return [dataclasses.asdict(f) for f in report.findings]


def _job_json(job: JobInfo) -> dict[str, Any]:
    row = dataclasses.asdict(job)
    row["status"] = job.status.value
    return row


async def open_queue(args: argparse.Namespace) -> JobQueue:
    """The queue an admin command names. A queue name without ``--partitions`` gets the
    count stored for the queue, so ``jobqueue stats emails`` sees every partition."""
    queue = load_queue(args.target, args.redis, args.partitions)
    if ":" in args.target:
        return queue
    if args.partitions is not None:
        await check_stored(queue._native, queue.name, queue.partitions)
        return queue
    stored = await partition_count(queue._native, 1)  # reads only: 1 is never stored
    if stored > 1:
        await queue.close()
        queue = load_queue(args.target, args.redis, stored)
    return queue


async def admin(args: argparse.Namespace) -> Any:
    async with await open_queue(args) as queue:
        command = args.command
        if command == "workers":
            return [dataclasses.asdict(w) for w in await queue.get_workers()]
        if command == "schedules":
            return [_schedule_json(s) for s in await queue.list_schedules()]
        if command == "stats":
            if args.group is not None:
                return dataclasses.asdict(await queue.get_stats(group=args.group))
            stats = dataclasses.asdict(await queue.get_stats())
            return {**stats, "redis_findings": _findings_json(await queue.health_check())}
        if command == "doctor":
            report = await queue.health_check()
            return {
                "queue": queue.name,
                "healthy": report.healthy,
                "redis_version": report.redis_version,
                "redis_rtt_ms": report.redis_rtt_ms,
                "workers": report.workers,
                "error": report.error,
                "findings": _findings_json(report),
            }
        if command == "jobs":
            jobs = await queue.get_jobs_by_status(args.status, args.limit, group=args.group)
            return [_job_json(j) for j in jobs]
        if command == "group":
            return await _group(queue, args)
        if command == "concurrency":
            limit = None if args.limit == "none" else _int_arg(args.limit, "limit")
            await queue.set_global_concurrency(limit)
            return {"concurrency": limit}
        if command == "dlq":
            return [_job_json(j) for j in await queue.get_dlq_jobs(args.limit)]
        if command == "retry":
            if args.job_id:
                await queue.retry_job(args.job_id)
                return {"retried": 1}
            return {"retried": await queue.bulk_retry(args.status, args.limit)}
        if command == "pause":
            await queue.pause()
            return {"paused": True}
        if command == "resume":
            await queue.resume()
            return {"paused": False}
        if command == "drain":
            return {"removed": await queue.drain(include_delayed=args.include_delayed)}
    raise SystemExit(f"unknown command {command}")


def _schedule_json(schedule: ScheduleInfo) -> dict[str, Any]:
    row = dataclasses.asdict(schedule)
    row["pattern"] = schedule.cron or f"every {schedule.every} ms"
    return row


def _int_arg(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"jobqueue: {name} must be a number or 'none', got {text!r}") from None


async def _group(queue: JobQueue, args: argparse.Namespace) -> Any:
    """Change a group's pause or limits as asked, then show its state."""
    if args.pause:
        await queue.pause_group(args.group)
    if args.resume:
        await queue.resume_group(args.group)
    if args.remove_limit:
        await queue.remove_group_limit(args.group)
    elif args.concurrency is not None or args.rate is not None:
        rate = None
        if args.rate is not None:
            count, _, window = args.rate.partition("/")
            rate = (_int_arg(count, "rate max"), _int_arg(window, "rate window"))
        await queue.set_group_limit(args.group, concurrency=args.concurrency, rate=rate)
    return dataclasses.asdict(await queue.get_stats(group=args.group))


def _common(defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. After it they override;
    their defaults are set once, on the main parser."""
    keep = None if defaults else argparse.SUPPRESS
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--redis",
        default=keep,
        help="Redis URL (default: $JOBQUEUE_REDIS_URL / $REDIS_URL)",
    )
    p.add_argument("--log-level", default="INFO" if defaults else keep, help="default INFO")
    p.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else keep,
        help="print JSON instead of tables",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=keep,
        help="partition count of a queue named by its name (default: stored)",
    )
    return p


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jobqueue",
        description=__doc__.splitlines()[0],
        parents=[_common(defaults=True)],
    )
    p.add_argument("--version", action="version", version=f"jobqueue {__version__}")
    common = [_common(defaults=False)]
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, target: bool = True) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help, parents=common)
        if target:
            cmd.add_argument("target", help="a queue name, or module:attribute of a JobQueue")
        return cmd

    worker = command("worker", "run a worker until SIGTERM/SIGINT", target=False)
    worker.add_argument("target", help="module:attribute of a JobQueue")
    worker.add_argument("--concurrency", type=int)
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (/metrics); needs jobqueue[prometheus]",
    )
    worker.add_argument("--metrics-addr", default="0.0.0.0", help="default 0.0.0.0")
    stats = command("stats", "job counts (and Redis findings), or a group's state")
    stats.add_argument("--group")
    command("pause", "stop handing out the queue's jobs, for every worker")
    command("resume", "hand out the queue's jobs again")
    command("doctor", "check the Redis settings that can lose jobs (exit 1 when unhealthy)")
    command("workers", "list the queue's live workers (from their heartbeats)")
    command("schedules", "list the queue's schedules, soonest next run first")
    jobs = command("jobs", "list jobs of a status")
    jobs.add_argument("--group")
    jobs.add_argument("--status", default=JobStatus.WAITING.value)
    jobs.add_argument("--limit", type=int, default=20)
    dlq = command("dlq", "list dead-lettered jobs")
    dlq.add_argument("--limit", type=int, default=20)
    retry = command("retry", "retry one job, or failed/DLQ jobs in bulk")
    retry.add_argument("--job-id")
    retry.add_argument("--status", default=JobStatus.DLQ.value)
    retry.add_argument("--limit", type=int)
    group = command("group", "show a group; pause, resume or limit it")
    group.add_argument("group")
    group.add_argument("--pause", action="store_true")
    group.add_argument("--resume", action="store_true")
    group.add_argument("--concurrency", type=int)
    group.add_argument("--rate", help="MAX/WINDOW_MS, e.g. 10/1000")
    group.add_argument("--remove-limit", action="store_true")
    limit = command("concurrency", "set the queue's global concurrency")
    limit.add_argument("limit", help="a number, or none")
    drain = command("drain", "remove waiting jobs")
    drain.add_argument("--include-delayed", action="store_true")
    add_dashboard_parser(command)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        if args.command == "worker":
            queue = load_queue(args.target, args.redis, args.partitions)
            asyncio.run(run_worker(queue, args.concurrency, args.metrics_port, args.metrics_addr))
        elif args.command == "dashboard":
            run_dashboard(args)
        else:
            result = asyncio.run(admin(args))
            print(render(args.command, result, as_json=args.json))
            if args.command == "doctor" and not result["healthy"]:
                raise SystemExit(1)
    except JobQueueError as exc:
        raise SystemExit(f"jobqueue: {type(exc).__name__}: {exc}") from None


# -- jobqueue dashboard -----------------------------------------------------------------------

#: Where the dashboard's credentials come from (never the command line: `ps` shows that).
DASHBOARD_PASSWORD_ENV = "JOBQUEUE_DASHBOARD_PASSWORD"
DASHBOARD_TOKEN_ENV = "JOBQUEUE_DASHBOARD_TOKEN"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def add_dashboard_parser(command: Callable[..., argparse.ArgumentParser]) -> None:
    dashboard = command(
        "dashboard",
        f"serve the web dashboard (Basic auth: ${DASHBOARD_PASSWORD_ENV}, "
        f"bearer token: ${DASHBOARD_TOKEN_ENV})",
        target=False,
    )
    dashboard.add_argument(
        "targets",
        nargs="*",
        help="queue names or module:attribute (none: every queue of the Redis, from its index)",
    )
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8000)
    dashboard.add_argument("--username", default="admin")
    dashboard.add_argument("--read-only", action="store_true", help="refuse every action")
    dashboard.add_argument(
        "--insecure", action="store_true", help="serve beyond loopback without authentication"
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_dashboard(args: argparse.Namespace) -> None:
    """Without credentials the dashboard serves on a loopback address only (unless
    ``--insecure``), and there only requests for a loopback host name (against DNS
    rebinding)."""
    try:
        from .dashboard import AuthHook, BasicAuth, TokenAuth, serve
    except ImportError as exc:
        raise SystemExit(
            f"jobqueue: the dashboard needs the dashboard extra "
            f"(pip install 'jobqueue[dashboard]'): {exc}"
        ) from None
    password = os.environ.get(DASHBOARD_PASSWORD_ENV)
    token = os.environ.get(DASHBOARD_TOKEN_ENV)
    auth: AuthHook | None = None
    if password:
        auth = BasicAuth(args.username, password)
    elif token:
        auth = TokenAuth(token)
    allowed_hosts = None
    if auth is None and _is_loopback(args.host):
        logger.warning("jobqueue: dashboard without authentication (loopback only)")
        allowed_hosts = [*_LOOPBACK_NAMES, args.host]
    elif auth is None and not args.insecure:
        raise SystemExit(
            f"jobqueue: set ${DASHBOARD_PASSWORD_ENV} or ${DASHBOARD_TOKEN_ENV} to serve the "
            f"dashboard on {args.host} (or pass --insecure); without them it serves on a "
            f"loopback address only"
        )

    async def run() -> None:
        queues = None
        if args.targets:
            queues = [await _stored_queue(target, args.redis) for target in args.targets]
        await serve(
            queues,
            redis=None if queues else args.redis,
            host=args.host,
            port=args.port,
            auth=auth,
            read_only=args.read_only,
            allowed_hosts=allowed_hosts,
            log_level=args.log_level,
        )

    asyncio.run(run())


async def _stored_queue(target: str, redis_url: str | None) -> JobQueue:
    """The queue ``target`` names, with the partition count stored for a queue name."""
    queue = load_queue(target, redis_url)
    if ":" in target:
        return queue
    stored = await partition_count(queue._native, 1)  # reads only: 1 is never stored
    if stored > 1:
        await queue.close()
        queue = load_queue(target, redis_url, stored)
    return queue


if __name__ == "__main__":
    main()
