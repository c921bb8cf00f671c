"""Spans of a job's life, named after the OpenTelemetry messaging conventions: ``send Q``
(PRODUCER) around each add, ``process Q`` (CONSUMER) around each processing attempt, and
the retry, DLQ and stalled transitions as span events or short spans.

With a `TraceContextTelemetry`, the add's span context is
stored in each job it adds (the record's trace field, not the user's data; see
docs/redis-layout.md), kept across retries, and every attempt's span is its child and
links to it. Made only when a queue has a ``telemetry`` adapter: without one, nothing here
runs and jobs store nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import InvalidOptionError
from .observability import Span, Telemetry, TraceContextTelemetry

if TYPE_CHECKING:
    from .job import Job

SYSTEM = "jobqueue"
#: The longest trace context a job stores.
MAX_TRACE_CONTEXT = 1024


def check_trace_context(value: object) -> str | None:
    """The adapter's trace context, or a clear error: it goes into the job's record, whose
    fields are separated by a control character."""
    if value is None or value == "":
        return None
    if (
        not isinstance(value, str)
        or len(value) > MAX_TRACE_CONTEXT
        or not value.isascii()
        or not value.isprintable()
    ):
        raise InvalidOptionError(
            "telemetry",
            "trace_context() must return None or printable ASCII text of at most "
            f"{MAX_TRACE_CONTEXT} characters, got {value!r:.80}",
        )
    return value


class JobTracer:
    """The spans of one queue's jobs, on its telemetry adapter."""

    __slots__ = ("_base", "_propagates", "queue", "telemetry")

    def __init__(self, telemetry: Telemetry, queue: str) -> None:
        self.telemetry = telemetry
        self.queue = queue
        self._propagates = isinstance(telemetry, TraceContextTelemetry)
        self._base: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.destination.name": queue,
        }

    def start_send(self, count: int) -> tuple[Span, str | None]:
        """The add's span, and the trace context to store in its jobs (None: nothing)."""
        attributes = {
            **self._base,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        }
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        name = f"send {self.queue}"
        telemetry = self.telemetry
        if not isinstance(telemetry, TraceContextTelemetry):
            return telemetry.start_span(name, attributes), None
        span = telemetry.start_send_span(name, attributes)
        try:
            context = check_trace_context(telemetry.trace_context(span))
        except BaseException as exc:
            span.record_exception(exc)
            span.end()
            raise
        return span, context

    def start_process(self, job: Job[Any]) -> Span:
        attributes = {
            **self._base,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.message.id": job.id,
            "jobqueue.job.name": job.name,
            "jobqueue.job.attempt": job.attempts_made,
            "jobqueue.job.max_attempts": job.max_attempts,
        }
        if job.group is not None:
            attributes["jobqueue.job.group"] = job.group
        name = f"process {self.queue}"
        telemetry = self.telemetry
        if isinstance(telemetry, TraceContextTelemetry):
            return telemetry.start_process_span(name, attributes, job.trace_context)
        return telemetry.start_span(name, attributes)

    @staticmethod
    def end_process(span: Span, outcome: str, delay_ms: int, error: BaseException | None) -> None:
        """End an attempt's span once its outcome is written: completed, retrying (an
        event ``jobqueue.retry`` with the delay), failed, dlq (an event ``jobqueue.dlq``)
        or lost (its lock was gone)."""
        span.set_attribute("jobqueue.job.outcome", outcome)
        add_event = getattr(span, "add_event", None)
        if add_event is not None:
            if outcome == "retrying":
                add_event("jobqueue.retry", {"jobqueue.retry.delay_ms": delay_ms})
            elif outcome == "dlq":
                add_event("jobqueue.dlq", {})
        if error is not None and outcome != "completed":
            span.set_attribute("error.type", type(error).__name__)
        span.end()

    def stalled(self, job_id: str, name: str, outcome: str) -> None:
        """A short span for a job found stalled (its worker died or stopped renewing): it
        went back to waiting, or failed (``stalled-failed``, ``stalled-dlq``)."""
        span = self.telemetry.start_span(
            f"stalled {self.queue}",
            {
                **self._base,
                "messaging.operation.type": "settle",
                "messaging.operation.name": "stalled",
                "messaging.message.id": job_id,
                "jobqueue.job.name": name,
                "jobqueue.job.outcome": outcome,
            },
        )
        span.end()
