"""Observability: follow a job from the request that added it to its last attempt
(OpenTelemetry, printed by the SDK's console exporter), serve Prometheus metrics, and list
the live workers.

    pip install 'jobqueue[otel,prometheus]' opentelemetry-sdk
    python examples/observability.py

It starts a throwaway redis-server on a free port (unless ``REDIS_URL`` points at one).
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

from _server import run_example
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from jobqueue import Job, JobQueue
from jobqueue.contrib.otel import OtelTelemetry
from jobqueue.contrib.prometheus import PrometheusMetrics, serve_metrics


def compact_span(span: Any) -> str:
    parent = f" parent={span.parent.span_id:016x}" if span.parent else ""
    outcome = span.attributes.get("jobqueue.job.outcome", "")
    return (
        f"  span {span.name!r} kind={span.kind.name} trace={span.context.trace_id:032x}"
        f" id={span.context.span_id:016x}{parent} {outcome}\n"
    )


async def main(redis_url: str) -> None:
    # The application's OpenTelemetry set-up (usually done once at start-up).
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=compact_span)))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("shop")

    queue = JobQueue(
        "emails",
        redis=redis_url,
        telemetry=OtelTelemetry(),  # traces (and, with an SDK meter provider, metrics)
        metrics=PrometheusMetrics(),  # Prometheus counters and histograms
        default_job_options={"backoff": 50},
    )

    @queue.processor("welcome")
    async def welcome(job: Job[dict[str, str]]) -> str:
        with tracer.start_as_current_span("render template"):  # nests under the attempt
            if job.attempts_made == 1:
                raise ConnectionError("mail server busy")
        return f"sent to {job.data['to']}"

    server = serve_metrics(0, "127.0.0.1", queues=[queue])
    print(f"Prometheus metrics at http://127.0.0.1:{server.port}/metrics\n")
    try:
        async with queue:
            await queue.start_worker()
            print("Spans (one trace: the request, the add, a failed attempt and a retry):")
            with tracer.start_as_current_span("POST /signup"):
                job_id = await queue.add_job("welcome", {"to": "ada@example.com"})
            info = await queue.wait_for(job_id, timeout=10_000)
            print(f"\nJob {job_id}: {info.status.value} after {info.attempts} attempts\n")

            print("Live workers:")
            for worker in await queue.get_workers():
                print(
                    f"  {worker.id} on {worker.host} pid {worker.pid}: "
                    f"concurrency {worker.concurrency}, running {worker.running}"
                )

            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(None, scrape, server.port)
            print("\nA scrape of /metrics (jobqueue series; histograms left out):")
            for line in text.splitlines():
                histogram = line.startswith("jobqueue_job_")
                if line.startswith("jobqueue_") and "_created{" not in line and not histogram:
                    print(f"  {line}")
    finally:
        server.close()
        provider.shutdown()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


if __name__ == "__main__":
    run_example(main)
