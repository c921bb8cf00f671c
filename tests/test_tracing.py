"""Tracing with the real OpenTelemetry SDK (in-memory exporter): one trace from the
request that added a job, through its failed attempts and its success in a worker
process; the trace context stored in the job's record, and nothing without a trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from jobqueue import JobQueue, JobStatus
from jobqueue.contrib.otel import OtelTelemetry, decode_context
from jobqueue.errors import InvalidOptionError
from jobqueue.testing import redis_command

from .helpers import port_of

#: A worker process with the SDK configured: it runs the job (failing twice), then writes
#: the spans it finished to a JSON file.
WORKER = """
import asyncio, json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry import trace
from jobqueue import Backoff, JobQueue
from jobqueue.contrib.otel import OtelTelemetry

url, name, job_id, out = sys.argv[1:5]
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
queue = JobQueue(name, redis=url, telemetry=OtelTelemetry(tracer_provider=provider))
inner = provider.get_tracer("app")

@queue.processor("charge")
async def charge(job):
    with inner.start_as_current_span("charge card"):  # nests under the attempt's span
        if job.attempts_made < 3:
            raise ConnectionError(f"card service down (attempt {job.attempts_made})")
    return "charged"

async def main():
    async with queue:
        await queue.start_worker()
        await queue.wait_for(job_id, 30_000)
    spans = []
    for s in exporter.get_finished_spans():
        spans.append({
            "name": s.name, "kind": s.kind.name, "trace": s.context.trace_id,
            "id": s.context.span_id, "parent": s.parent.span_id if s.parent else None,
            "links": [l.context.span_id for l in s.links],
            "attributes": dict(s.attributes), "events": [e.name for e in s.events],
            "status": s.status.status_code.name,
        })
    with open(out, "w") as f:
        json.dump(spans, f)

asyncio.run(main())
"""


@pytest.fixture
def tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _record(url: str, queue_name: str, job_id: str) -> list[bytes]:
    raw = redis_command(port_of(url), "GET", f"jq:{{{queue_name}}}:j:{job_id}")
    assert isinstance(raw, bytes)
    return raw.split(b"\x1f")


def _span(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.name == name]
    return found


async def test_one_trace_from_the_request_through_two_failed_attempts_and_a_success_in_a_worker_process(  # noqa: E501
    tmp_path: Path,
    redis_url: str,
    queue_name: str,
    tracing: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = tracing
    async with JobQueue(
        queue_name, redis=redis_url, telemetry=OtelTelemetry(tracer_provider=provider)
    ) as producer:
        with provider.get_tracer("web").start_as_current_span("POST /orders"):
            job_id = await producer.add_job("charge", {"order": 7}, attempts=3, backoff=10)
        request = _span(list(exporter.get_finished_spans()), "POST /orders")
        send = _span(list(exporter.get_finished_spans()), f"send {queue_name}")
        # The worker is another process: the context crosses in the job's record only.
        script = tmp_path / "worker.py"
        script.write_text(textwrap.dedent(WORKER))
        out = tmp_path / "spans.json"
        subprocess.run(
            [sys.executable, str(script), redis_url, queue_name, job_id, str(out)],
            check=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        info = await producer.get_job_status(job_id)
        assert info is not None and info.status is JobStatus.COMPLETED and info.attempts == 3
    assert send.kind is SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == request.context.span_id
    assert send.attributes is not None and send.attributes["messaging.message.id"] == job_id
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.destination.name"] == queue_name
    # The user's data is untouched; the context has a field of its own.
    assert info.data == {"order": 7}

    spans: list[dict[str, Any]] = json.loads(out.read_text())
    attempts = sorted(
        (s for s in spans if s["name"] == f"process {queue_name}"),
        key=lambda s: s["attributes"]["jobqueue.job.attempt"],
    )
    assert [s["attributes"]["jobqueue.job.attempt"] for s in attempts] == [1, 2, 3]
    assert [s["attributes"]["jobqueue.job.outcome"] for s in attempts] == [
        "retrying",
        "retrying",
        "completed",
    ]
    trace_id = request.context.trace_id
    for attempt in attempts:
        assert attempt["kind"] == "CONSUMER"
        assert attempt["trace"] == trace_id  # the request's trace
        assert attempt["parent"] == send.context.span_id  # child of the add ...
        assert attempt["links"] == [send.context.span_id]  # ... and linked to it
        assert attempt["attributes"]["messaging.message.id"] == job_id
        assert attempt["attributes"]["messaging.system"] == "jobqueue"
        assert attempt["attributes"]["messaging.operation.type"] == "process"
        assert attempt["attributes"]["jobqueue.job.name"] == "charge"
    for failed in attempts[:2]:
        assert failed["events"] == ["exception", "jobqueue.retry"]
        assert failed["status"] == "ERROR"
        assert failed["attributes"]["error.type"] == "ConnectionError"
    assert attempts[2]["events"] == [] and attempts[2]["status"] == "UNSET"
    # Spans the processor starts are children of its attempt's span.
    inner = [s for s in spans if s["name"] == "charge card"]
    assert sorted(s["parent"] for s in inner) == sorted(a["id"] for a in attempts)
    assert {s["trace"] for s in inner} == {trace_id}


async def test_the_record_holds_the_w3c_context_of_the_add(
    redis_url: str, queue_name: str, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = tracing
    async with JobQueue(
        queue_name, redis=redis_url, telemetry=OtelTelemetry(tracer_provider=provider)
    ) as q:
        with provider.get_tracer("web").start_as_current_span("batch"):
            ids = await q.add_jobs([("a", 1), ("b", 2, {"group": "g"})])
    send = _span(list(exporter.get_finished_spans()), f"send {queue_name}")
    assert send.attributes is not None and send.attributes["messaging.batch.message_count"] == 2
    for job_id in ids:
        # Field 11 holds extensions (docs/redis-layout.md): the trace context is `t...\x1e`.
        stored = _record(redis_url, queue_name, job_id)[10].decode()
        assert stored[0] == "t" and stored[-1] == "\x1e"
        parent = decode_context(stored[1:-1])
        from opentelemetry import trace

        context = trace.get_current_span(parent).get_span_context()
        assert context.trace_id == send.context.trace_id
        assert context.span_id == send.context.span_id
    assert _record(redis_url, queue_name, ids[1])[6] == b"g"  # the group still in its place


async def test_a_job_added_with_no_trace_stores_nothing(redis_url: str, queue_name: str) -> None:
    async with JobQueue(queue_name, redis=redis_url) as plain:
        untraced = await plain.add_job("a", 1)
    # An adapter with no SDK behind it (the API's no-op tracer) has no valid context.
    noop = OtelTelemetry(tracer_provider=NoOpTracerProvider())
    async with JobQueue(queue_name, redis=redis_url, telemetry=noop) as q:
        no_sdk = await q.add_job("a", 1)
    for job_id in (untraced, no_sdk):
        assert _record(redis_url, queue_name, job_id)[10] == b""


class _BadContext:
    """A tracer whose context would break the record's format."""

    def __init__(self) -> None:
        self.ended = 0

    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> _BadContext:
        return self

    def start_send_span(self, name: str, attributes: dict[str, Any]) -> _BadContext:
        return self

    def trace_context(self, span: Any) -> str:
        return "00-abc\x1f-01"

    def start_process_span(self, name: str, attributes: dict[str, Any], ctx: Any) -> _BadContext:
        return self

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def record_exception(self, error: BaseException) -> None:
        pass

    def end(self) -> None:
        self.ended += 1


async def test_a_bad_trace_context_is_refused_and_nothing_is_written(
    redis_url: str, queue_name: str
) -> None:
    bad = _BadContext()
    async with JobQueue(queue_name, redis=redis_url, telemetry=bad) as q:
        with pytest.raises(InvalidOptionError, match="trace_context"):
            await q.add_job("a", 1)
        assert (await q.get_stats()).waiting == 0
    assert bad.ended == 1
    keys = redis_command(port_of(redis_url), "KEYS", f"jq:{{{queue_name}}}:j:*")
    assert keys == []


async def test_an_attempt_span_records_its_error_and_outcome_in_process(
    redis_url: str, queue_name: str, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = tracing
    q = JobQueue(
        queue_name,
        redis=redis_url,
        telemetry=OtelTelemetry(tracer_provider=provider),
        dlq={"enabled": True},
    )

    @q.processor("fails")
    def fails(job: Any) -> None:  # a thread processor: the span is current there too
        with provider.get_tracer("app").start_as_current_span("in thread"):
            raise ValueError("nope")

    async with q:
        await q.start_worker()
        job_id = await q.add_job("fails", None, attempts=1)
        assert (await q.wait_for(job_id, 10_000)).status is JobStatus.DLQ
        await q.close()
    spans = list(exporter.get_finished_spans())
    attempt = _span(spans, f"process {queue_name}")
    assert attempt.attributes is not None
    assert attempt.attributes["jobqueue.job.outcome"] == "dlq"
    assert attempt.status.status_code is StatusCode.ERROR
    assert [e.name for e in attempt.events] == ["exception", "jobqueue.dlq"]
    thread_span = _span(spans, "in thread")
    assert thread_span.parent is not None
    assert thread_span.parent.span_id == attempt.context.span_id


async def test_otel_telemetry_is_also_the_metrics_adapter(redis_url: str, queue_name: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry = OtelTelemetry(tracer_provider=NoOpTracerProvider(), meter_provider=meters)
    q = JobQueue(queue_name, redis=redis_url, telemetry=telemetry)
    assert q.metrics is telemetry
    q.process("ok", lambda job: 1)
    async with q:
        await q.start_worker()
        for job_id in await q.add_jobs([("ok", i) for i in range(3)]):
            await q.wait_for(job_id, 10_000)
        await q.close()
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                (point,) = metric.data.data_points
                assert dict(point.attributes) == {"queue": queue_name, "job": "ok"}
                points[metric.name] = point
    assert points["jobqueue.jobs.added"].value == 3
    assert points["jobqueue.jobs.completed"].value == 3
    assert points["jobqueue.jobs.running"].value == 0
    assert points["jobqueue.job.duration_ms"].count == 3
    assert points["jobqueue.job.wait_ms"].count == 3


async def test_a_stalled_job_gets_a_short_span_and_its_rerun_stays_in_the_trace(
    redis_url: str, queue_name: str, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    from jobqueue import QueueSettings

    from .helpers import plant_stalled_job

    provider, exporter = tracing
    q = JobQueue(
        queue_name,
        redis=redis_url,
        telemetry=OtelTelemetry(tracer_provider=provider),
        settings=QueueSettings(max_stalled_interval=100),
    )
    q.process("s", lambda job: "ran")
    async with q:
        with provider.get_tracer("web").start_as_current_span("request"):
            job_id = await q.add_job("s", None)
        plant_stalled_job(port_of(redis_url), queue_name, job_id)  # its worker "died"
        await q.start_worker()
        assert (await q.wait_for(job_id, 10_000)).status is JobStatus.COMPLETED
        await q.close()
    spans = list(exporter.get_finished_spans())
    stalled = _span(spans, f"stalled {queue_name}")
    assert stalled.attributes is not None
    assert stalled.attributes["messaging.message.id"] == job_id
    assert stalled.attributes["jobqueue.job.outcome"] == "stalled"
    attempt = _span(spans, f"process {queue_name}")
    send = _span(spans, f"send {queue_name}")
    assert attempt.parent is not None and attempt.parent.span_id == send.context.span_id
