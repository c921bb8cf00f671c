"""The shapes of the metrics and tracing adapters a queue accepts, and the names of the
metrics it reports (all tagged with ``queue``, and those of jobs with ``job``, the job's
name; never its id):

- ``jobqueue.jobs.added``, ``.completed``, ``.retried``, ``.failed``, ``.dlq``,
  ``.stalled`` (counters): jobs enqueued (idempotent repeats not counted), attempts that
  completed, failed attempts that will be retried, jobs that finally failed, jobs moved
  to the DLQ, jobs found stalled;
- ``jobqueue.jobs.running`` (an up-down counter: ``increment`` by 1 when a processor
  starts, by -1 when it ends): jobs running in this process;
- ``jobqueue.job.wait_ms`` (observed): from the add to the first attempt's start (Redis
  clock; a delayed job's delay included);
- ``jobqueue.job.duration_ms`` (observed): each attempt's run time.

Tracing: any `Telemetry` gets a span per add and per processing attempt. One that
also has the methods of `TraceContextTelemetry` (``jobqueue.contrib.otel``'s
``OtelTelemetry`` does) carries the trace from the add into every attempt, across
processes: see `jobqueue.tracing`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from . import _validate as v
from .errors import InvalidOptionError

METRIC_JOBS_ADDED = "jobqueue.jobs.added"
METRIC_JOBS_COMPLETED = "jobqueue.jobs.completed"
METRIC_JOBS_RETRIED = "jobqueue.jobs.retried"
METRIC_JOBS_FAILED = "jobqueue.jobs.failed"
METRIC_JOBS_DLQ = "jobqueue.jobs.dlq"
METRIC_JOBS_STALLED = "jobqueue.jobs.stalled"
METRIC_JOBS_RUNNING = "jobqueue.jobs.running"
METRIC_JOB_WAIT = "jobqueue.job.wait_ms"
METRIC_JOB_DURATION = "jobqueue.job.duration_ms"


@runtime_checkable
class MetricsAdapter(Protocol):
    def increment(self, name: str, value: float = 1, tags: dict[str, str] | None = None) -> Any: ...

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> Any: ...


class Span(Protocol):
    """A span. One that also has ``add_event(name, attributes)`` gets the retry and DLQ
    transitions of its attempt as events."""

    def set_attribute(self, key: str, value: Any) -> Any: ...

    def record_exception(self, error: BaseException) -> Any: ...

    def end(self) -> Any: ...


@runtime_checkable
class Telemetry(Protocol):
    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> Span: ...


@runtime_checkable
class TraceContextTelemetry(Telemetry, Protocol):
    """A tracer that links a job's attempts to the add, across processes."""

    def start_send_span(self, name: str, attributes: dict[str, Any]) -> Span:
        """A PRODUCER span, child of the caller's current span."""
        ...

    def trace_context(self, span: Span) -> str | None:
        """The context of ``span`` as text to store in its jobs (printable ASCII, at most
        1,024 characters; e.g. W3C ``traceparent``), or None to store nothing."""
        ...

    def start_process_span(
        self, name: str, attributes: dict[str, Any], trace_context: str | None
    ) -> Span:
        """A CONSUMER span, child of (and linked to) the stored ``trace_context``, made
        the current span of the calling task (the job's own asyncio task)."""
        ...


def check_adapter(value: object, protocol: type, name: str) -> Any:
    if value is not None and not isinstance(value, protocol):
        methods = ", ".join(
            m for m in ("increment", "observe", "start_span") if hasattr(protocol, m)
        )
        raise InvalidOptionError(name, f"must have the methods {methods}, got {v.type_name(value)}")
    return value
