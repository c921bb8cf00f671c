"""Prometheus metrics for jobqueue (``pip install jobqueue[prometheus]``, on
``prometheus_client``).

- `PrometheusMetrics`: a ``metrics`` adapter. Counters
  ``jobqueue_jobs_{added,completed,retried,failed,dlq,stalled}_total``, histograms
  ``jobqueue_job_wait_seconds`` (added -> first start) and
  ``jobqueue_job_duration_seconds`` (each attempt), and the gauge ``jobqueue_jobs_running``;
  labelled ``queue`` and ``job`` (the job's name; never its id).
- `QueueCollector`: read from Redis at scrape time, for each queue:
  ``jobqueue_queue_jobs{queue,status}`` (waiting, active, delayed, paused, failed, dlq,
  completed), ``jobqueue_queue_oldest_waiting_age_seconds``, ``jobqueue_queue_workers``
  (live workers of the whole fleet) and ``jobqueue_worker_running_jobs{queue,worker,host}``;
  ``jobqueue_queue_up`` is 0 for a queue whose Redis did not answer (its series are left
  out, the others still served).
- `serve_metrics()`: ``/metrics`` over HTTP on a thread (``jobqueue worker
  --metrics-port 9100`` calls it).

Several worker processes on one host: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory before they start (prometheus_client's multiprocess mode). Each process then
writes its metrics there, every process binds the metrics port with ``SO_REUSEPORT``, and
any of them answers a scrape with the sum over all of them (the running-jobs gauge counts
live processes only). A process that exits removes its live gauge; one that was killed is
removed by the next process that starts serving (`remove_dead_processes()`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as mp
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import make_wsgi_app
from prometheus_client.registry import Collector

from .. import observability as o
from ..errors import JobQueueError
from ..sync import JobQueue as SyncJobQueue

_COUNTERS = {
    o.METRIC_JOBS_ADDED: ("jobqueue_jobs_added", "Jobs enqueued"),
    o.METRIC_JOBS_COMPLETED: ("jobqueue_jobs_completed", "Attempts that completed"),
    o.METRIC_JOBS_RETRIED: ("jobqueue_jobs_retried", "Failed attempts that will be retried"),
    o.METRIC_JOBS_FAILED: ("jobqueue_jobs_failed", "Jobs that finally failed"),
    o.METRIC_JOBS_DLQ: ("jobqueue_jobs_dlq", "Jobs moved to the dead-letter queue"),
    o.METRIC_JOBS_STALLED: ("jobqueue_jobs_stalled", "Jobs found stalled"),
}
_HISTOGRAMS = {
    o.METRIC_JOB_WAIT: ("jobqueue_job_wait_seconds", "From the add to the first start"),
    o.METRIC_JOB_DURATION: ("jobqueue_job_duration_seconds", "Run time of an attempt"),
}
_LABELS = ("queue", "job")
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

#: The instruments made for each registry (a name can be registered once per registry).
_INSTRUMENTS: dict[int, dict[str, Any]] = {}
_INSTRUMENTS_LOCK = threading.Lock()
logger = logging.getLogger("jobqueue")


def _instruments(registry: CollectorRegistry) -> dict[str, Any]:
    with _INSTRUMENTS_LOCK:
        made = _INSTRUMENTS.get(id(registry))
        if made is None:
            made = {}
            for name, (metric, doc) in _COUNTERS.items():
                made[name] = Counter(metric, doc, _LABELS, registry=registry)
            for name, (metric, doc) in _HISTOGRAMS.items():
                made[name] = Histogram(metric, doc, _LABELS, registry=registry, buckets=_BUCKETS)
            made[o.METRIC_JOBS_RUNNING] = Gauge(
                "jobqueue_jobs_running",
                "Jobs running in worker processes",
                _LABELS,
                registry=registry,
                multiprocess_mode="livesum",
            )
            _INSTRUMENTS[id(registry)] = made
        return made


class PrometheusMetrics:
    """A ``metrics`` adapter writing to prometheus_client metrics in ``registry`` (the
    default registry unless given). Names it does not know are ignored."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._metrics = _instruments(registry)
        #: (metric, queue, job) -> the labelled child: labels() costs more than the update.
        self._children: dict[tuple[str, str, str], Any] = {}

    def _child(self, name: str, tags: dict[str, str] | None) -> Any:
        tags = tags or {}
        key = (name, tags.get("queue", ""), tags.get("job", ""))
        child = self._children.get(key)
        if child is None:
            metric = self._metrics.get(name)
            if metric is None:
                return None
            if len(self._children) > 10_000:  # names are few; this bounds a runaway
                self._children.clear()
            child = self._children[key] = metric.labels(key[1], key[2])
        return child

    def increment(self, name: str, value: float = 1, tags: dict[str, str] | None = None) -> None:
        child = self._child(name, tags)
        if child is not None and (value > 0 or name == o.METRIC_JOBS_RUNNING):
            child.inc(value)

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        child = self._child(name, tags)
        if child is not None:
            child.observe(value / 1000)  # ms -> s


class QueueCollector(Collector):
    """Reads each queue's state from Redis when scraped. ``queues`` are blocking queues
    (``jobqueue.sync.JobQueue``), or asyncio ``JobQueue`` objects whose name, Redis and
    prefix are used to open blocking ones (closed by `close()`)."""

    def __init__(self, queues: Sequence[Any]) -> None:
        self._queues: list[SyncJobQueue] = []
        self._owned: list[SyncJobQueue] = []
        for queue in queues:
            if isinstance(queue, SyncJobQueue):
                self._queues.append(queue)
                continue
            own = SyncJobQueue(
                queue.name,
                redis=queue.redis_config,
                prefix=queue.prefix,
                settings={"on_unsafe_redis": "ignore"},
            )
            self._queues.append(own)
            self._owned.append(own)

    def describe(self) -> Iterable[Metric]:
        return []  # read at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "jobqueue_queue_jobs", "Jobs of the queue by status", labels=["queue", "status"]
        )
        age = GaugeMetricFamily(
            "jobqueue_queue_oldest_waiting_age_seconds",
            "Age of the oldest waiting job",
            labels=["queue"],
        )
        workers = GaugeMetricFamily(
            "jobqueue_queue_workers", "Live workers of the queue (all hosts)", labels=["queue"]
        )
        running = GaugeMetricFamily(
            "jobqueue_worker_running_jobs",
            "Jobs running on each live worker, as of its last heartbeat",
            labels=["queue", "worker", "host"],
        )
        up = GaugeMetricFamily(
            "jobqueue_queue_up", "1 when the queue's Redis answered this scrape", labels=["queue"]
        )
        for queue in self._queues:
            try:
                stats = queue.get_stats()
                live = queue.get_workers()
            except JobQueueError as exc:  # the other series still go out
                logger.warning("jobqueue: metrics of queue %r not read: %s", queue.name, exc)
                up.add_metric([queue.name], 0)
                continue
            up.add_metric([queue.name], 1)
            for status in ("waiting", "active", "delayed", "paused", "failed", "dlq", "completed"):
                jobs.add_metric([queue.name, status], getattr(stats, status))
            age.add_metric([queue.name], stats.latency_ms / 1000)
            workers.add_metric([queue.name], len(live))
            for worker in live:
                running.add_metric([queue.name, worker.id, worker.host], worker.running)
        yield from (up, jobs, age, workers, running)

    def close(self) -> None:
        for queue in self._owned:
            queue.close()


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` (or the older lower-case name), when set."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


_PID_IN_FILE = re.compile(r"_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_processes(path: str) -> list[int]:
    """Remove the live gauges of processes of this host that no longer run (killed
    without cleaning up); their counters and histograms stay, as totals must. Returns
    their pids."""
    dead = set()
    for file in Path(path).glob("gauge_live*.db"):
        found = _PID_IN_FILE.search(file.name)
        if found and not _alive(int(found.group(1))):
            dead.add(int(found.group(1)))
    for pid in dead:
        mp.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return sorted(dead)


def process_exit() -> None:
    """Remove this process's live gauges (call when a worker process ends)."""
    path = multiprocess_dir()
    if path:
        mp.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    reuse_port = False

    def server_bind(self) -> None:
        if self.reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class MetricsServer:
    """``/metrics`` served on a daemon thread; `close()` stops it."""

    def __init__(
        self, server: _Server, registry: CollectorRegistry, collectors: list[QueueCollector]
    ) -> None:
        self._server = server
        self._registry = registry
        self._collectors = collectors
        self.port: int = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever, name="jobqueue-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for collector in self._collectors:
            self._registry.unregister(collector)
            collector.close()


def serve_metrics(
    port: int,
    addr: str = "0.0.0.0",
    *,
    queues: Sequence[Any] = (),
    registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` (port 0: a free one, see ``.port``) with the
    metrics of ``registry`` (default: the default registry, or in multiprocess mode the
    sum over this host's processes) and a `QueueCollector` of ``queues``."""
    path = multiprocess_dir()
    if registry is None:
        if path:
            remove_dead_processes(path)
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
    collectors = [QueueCollector(queues)] if queues else []
    for collector in collectors:
        registry.register(collector)

    class Server(_Server):
        # Every worker process of the host serves the same sums on one port.
        reuse_port = bool(path)

    try:
        server = make_server(
            addr, port, make_wsgi_app(registry), server_class=Server, handler_class=_Handler
        )
    except BaseException:
        for collector in collectors:
            registry.unregister(collector)
            collector.close()
        raise
    return MetricsServer(server, registry, collectors)
