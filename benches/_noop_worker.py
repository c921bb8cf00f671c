"""A worker process with a no-op processor, for the benchmarks that need one."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.synchronize import Event
from typing import Any

from jobqueue import JobQueue, QueueSettings, WorkerConfig


def observability(observe: str) -> dict[str, Any]:
    """The queue arguments of ``--observe``: none; otel (OtelTelemetry with the SDK,
    spans batched to an exporter that drops them, metrics to the SDK's meter); prometheus
    (PrometheusMetrics); both (OtelTelemetry's tracing and PrometheusMetrics)."""
    if observe == "none":
        return {}
    kwargs: dict[str, Any] = {}
    if observe in ("otel", "both"):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        from jobqueue.contrib.otel import OtelTelemetry

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        kwargs["telemetry"] = OtelTelemetry(provider, MeterProvider())
    if observe in ("prometheus", "both"):
        from jobqueue.contrib.prometheus import PrometheusMetrics

        kwargs["metrics"] = PrometheusMetrics()
    return kwargs


def _run(
    url: str,
    queue_name: str,
    concurrency: int,
    ready: Event,
    stop: Event,
    settings: QueueSettings | None,
    partitions: int,
    observe: str,
) -> None:
    async def run() -> None:
        queue = JobQueue(
            queue_name,
            redis=url,
            worker=WorkerConfig(concurrency=concurrency),
            settings=settings,
            partitions=partitions,
            **observability(observe),
        )

        @queue.processor("noop")
        async def noop(job: object) -> None:
            return None

        await queue.start_worker()
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await queue.close()

    asyncio.run(run())


async def start_noop_worker(
    url: str,
    queue_name: str,
    concurrency: int,
    settings: QueueSettings | None = None,
    partitions: int = 1,
    observe: str = "none",
) -> tuple[multiprocessing.process.BaseProcess, Event]:
    """Start the worker process; returns once it runs, with the event that stops it."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    args = (url, queue_name, concurrency, ready, stop, settings, partitions, observe)
    process = ctx.Process(target=_run, args=args)
    process.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    return process, stop


async def wait_drained(queue: JobQueue) -> None:
    """Return once the queue has no waiting and no active job."""
    while True:
        stats = await queue.get_stats()
        if stats.waiting == 0 and stats.active == 0:
            return
        await asyncio.sleep(0.005)
