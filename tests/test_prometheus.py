"""Prometheus metrics, scraped from the real HTTP endpoint and parsed with
``prometheus_client.parser``: one process, and a fleet of worker processes on one host in
multiprocess mode."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from jobqueue import JobQueue, JobStatus
from jobqueue.contrib.prometheus import PrometheusMetrics, remove_dead_processes, serve_metrics

from .helpers import eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _scrape_async(port: int) -> Samples:
    return await asyncio.get_running_loop().run_in_executor(None, _scrape, port)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_one_process_metrics_and_the_queue_state_at_scrape_time(
    redis_url: str, queue_name: str
) -> None:
    registry = CollectorRegistry()
    q = JobQueue(
        queue_name,
        redis=redis_url,
        metrics=PrometheusMetrics(registry),
        default_job_options={"backoff": 10},
    )
    q.process("ok", lambda job: "done")
    q.process("bad", lambda job: 1 / 0)
    async with q:
        server = serve_metrics(0, "127.0.0.1", queues=[q], registry=registry)
        try:
            await q.start_worker()
            ids = await q.add_jobs([("ok", i) for i in range(3)])
            ids.append(await q.add_job("bad", None, attempts=2))
            for job_id in ids:
                await q.wait_for(job_id, 10_000)
            await q.pause()
            await q.add_jobs([("ok", "later"), ("ok", "later")])
            await q.add_job("ok", None, delay=60_000)

            async def scraped() -> Samples | None:
                samples = await _scrape_async(server.port)
                done = _value(samples, "jobqueue_jobs_completed_total", queue=queue_name, job="ok")
                return samples if done == 3 else None

            samples = await eventually(scraped)
        finally:
            server.close()
    labels = {"queue": queue_name}
    assert _value(samples, "jobqueue_jobs_added_total", **labels, job="ok") == 6
    assert _value(samples, "jobqueue_jobs_added_total", **labels, job="bad") == 1
    assert _value(samples, "jobqueue_jobs_retried_total", **labels, job="bad") == 1
    assert _value(samples, "jobqueue_jobs_failed_total", **labels, job="bad") == 1
    assert _value(samples, "jobqueue_jobs_dlq_total", **labels, job="bad") == 1
    assert _value(samples, "jobqueue_job_duration_seconds_count", **labels, job="ok") == 3
    assert _value(samples, "jobqueue_job_duration_seconds_count", **labels, job="bad") == 2
    assert _value(samples, "jobqueue_job_wait_seconds_count", **labels, job="ok") == 3
    assert _value(samples, "jobqueue_jobs_running", **labels, job="ok") == 0
    # Read from Redis when scraped.
    status = "jobqueue_queue_jobs"
    assert _value(samples, status, **labels, status="paused") == 2
    assert _value(samples, status, **labels, status="delayed") == 1
    assert _value(samples, status, **labels, status="dlq") == 1
    assert _value(samples, status, **labels, status="completed") == 3
    assert _value(samples, status, **labels, status="waiting") == 0
    assert _value(samples, status, **labels, status="active") == 0
    assert _value(samples, "jobqueue_queue_workers", **labels) == 1
    assert ("jobqueue_queue_oldest_waiting_age_seconds", (("queue", queue_name),)) in samples
    worker_labels = {k: v for (name, ls), _ in samples.items() for k, v in ls if k == "worker"}
    assert worker_labels == {"worker": q.worker_id}
    # No label ever carries a job id.
    assert not {v for (_, ls) in samples for k, v in ls if v in ids and k != "queue"}
    assert {k for (_, ls) in samples for k, _ in ls} <= {
        "queue",
        "job",
        "status",
        "worker",
        "host",
        "le",
    }


APP = """
from jobqueue import JobQueue

queue = JobQueue({name!r}, redis={url!r})

@queue.processor("ok")
async def ok(job):
    return 1
"""


async def test_a_fleet_of_worker_processes_on_one_host_is_summed_on_one_port(
    tmp_path: Path, redis_url: str, queue_name: str
) -> None:
    (tmp_path / "prom_app.py").write_text(
        textwrap.dedent(APP.format(name=queue_name, url=redis_url))
    )
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    command = [sys.executable, "-m", "jobqueue.cli", "worker", "prom_app:queue"]
    command += ["--metrics-port", str(port), "--metrics-addr", "127.0.0.1"]
    processes = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        async with JobQueue(queue_name, redis=redis_url) as q:

            async def both_up() -> bool:
                return len(await q.get_workers()) == 2

            await eventually(both_up, timeout=30)
            ids = await q.add_jobs([("ok", i) for i in range(200)])
            for job_id in ids:
                assert (await q.wait_for(job_id, 20_000)).status is JobStatus.COMPLETED

            # Whichever process answers, the scrape holds the sum over both.
            async def summed() -> bool:
                for _ in range(6):
                    samples = await _scrape_async(port)
                    done = _value(
                        samples, "jobqueue_jobs_completed_total", queue=queue_name, job="ok"
                    )
                    if done != 200:
                        return False
                return True

            await eventually(summed, timeout=20)
            samples = await _scrape_async(port)
            assert _value(samples, "jobqueue_queue_workers", queue=queue_name) == 2
            assert (
                _value(samples, "jobqueue_queue_jobs", queue=queue_name, status="completed") == 200
            )
            # Both processes wrote their own files.
            assert {p.pid for p in processes} <= {
                int(f.stem.rsplit("_", 1)[1]) for f in metrics_dir.glob("counter_*.db")
            }
            killed, survivor = processes
            killed.send_signal(signal.SIGKILL)
            killed.wait()
            live = {f.name for f in metrics_dir.glob("gauge_live*.db")}
            assert f"gauge_livesum_{killed.pid}.db" in live
            # A killed process's live gauge is removed by the next process that serves
            # (here called directly); its counters stay in the totals.
            assert remove_dead_processes(str(metrics_dir)) == [killed.pid]
            assert not (metrics_dir / f"gauge_livesum_{killed.pid}.db").exists()
            samples = await _scrape_async(port)
            done = _value(samples, "jobqueue_jobs_completed_total", queue=queue_name, job="ok")
            assert done == 200
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=20) == 0
            # A process that exits removes its own live gauge.
            assert not (metrics_dir / f"gauge_livesum_{survivor.pid}.db").exists()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_import_jobqueue_imports_neither_extra() -> None:
    code = (
        "import sys, jobqueue, jobqueue.sync, jobqueue.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'opentelemetry', 'prometheus_client'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_queue_whose_redis_is_down_reads_as_not_up_and_the_rest_is_served(
    redis_url: str, queue_name: str
) -> None:
    from jobqueue.sync import JobQueue as SyncJobQueue

    registry = CollectorRegistry()
    down = SyncJobQueue(
        "down", redis={"url": f"redis://127.0.0.1:{_free_port()}/0", "connect_timeout": 200}
    )
    async with JobQueue(queue_name, redis=redis_url) as q:
        await q.add_job("t", None)
        server = serve_metrics(0, "127.0.0.1", queues=[q, down], registry=registry)
        try:
            samples = await _scrape_async(server.port)
        finally:
            server.close()
            await asyncio.to_thread(down.close)
    assert _value(samples, "jobqueue_queue_up", queue=queue_name) == 1
    assert _value(samples, "jobqueue_queue_up", queue="down") == 0
    assert _value(samples, "jobqueue_queue_jobs", queue=queue_name, status="waiting") == 1
    assert not [
        key for key in samples if ("queue", "down") in key[1] and key[0] != "jobqueue_queue_up"
    ]
