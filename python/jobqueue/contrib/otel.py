"""OpenTelemetry tracing and metrics for jobqueue (``pip install jobqueue[otel]``; needs
``opentelemetry-api`` only).

With the OpenTelemetry SDK configured in the process (a tracer provider, and a meter
provider for metrics), pass ``telemetry=OtelTelemetry()`` to a ``JobQueue``:

- each add is a ``send <queue>`` PRODUCER span, child of the caller's current span (the
  HTTP request that added the job), and its W3C trace context (``traceparent``, then a
  space and ``tracestate`` when there is one) is stored with each job it adds;
- each processing attempt is a ``process <queue>`` CONSUMER span, child of that stored
  context and linked to it, in whichever process or host runs it; it is the current span
  while the processor runs (spans the processor starts nest under it), records the
  processor's exception, and ends with the attempt's outcome (``jobqueue.job.outcome``;
  retries and dead-lettering as span events);
- stalled jobs get a short ``stalled <queue>`` span;
- the queue's metrics (see `jobqueue.observability`) go to OpenTelemetry
  instruments: counters, an up-down counter of running jobs and histograms (in ms).

Without a configured SDK the API's no-op tracer makes invalid contexts, and jobs store
nothing.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..observability import METRIC_JOBS_RUNNING
from ..workers import VERSION

_PROPAGATOR = TraceContextTextMapPropagator()


class OtelSpan:
    """An OpenTelemetry span as jobqueue uses it: a recorded exception also marks the
    span's status as an error."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set_attribute(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def add_event(self, name: str, attributes: dict[str, Any]) -> None:
        self.span.add_event(name, attributes)

    def record_exception(self, error: BaseException) -> None:
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))

    def end(self) -> None:
        self.span.end()


def encode_context(span: trace.Span) -> str | None:
    """The W3C trace context of ``span`` as one text, or None for an invalid one."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    parent = carrier.get("traceparent")
    if not parent:
        return None
    state = carrier.get("tracestate")
    return f"{parent} {state}" if state else parent


def decode_context(text: str) -> otel_context.Context:
    """The context a text of `encode_context()` holds (an empty one if unreadable)."""
    parent, _, state = text.partition(" ")
    carrier = {"traceparent": parent}
    if state:
        carrier["tracestate"] = state
    return _PROPAGATOR.extract(carrier, context=otel_context.Context())


class OtelTelemetry:
    """A ``telemetry`` (and ``metrics``) adapter on the OpenTelemetry API. The tracer and
    meter come from the global providers unless given."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: otel_metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer("jobqueue", VERSION, tracer_provider=tracer_provider)
        self.meter = otel_metrics.get_meter("jobqueue", VERSION, meter_provider=meter_provider)
        self._instruments: dict[str, Any] = {}

    # -- tracing ------------------------------------------------------------------------

    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> OtelSpan:
        return OtelSpan(self.tracer.start_span(name, attributes=attributes))

    def start_send_span(self, name: str, attributes: dict[str, Any]) -> OtelSpan:
        return OtelSpan(self.tracer.start_span(name, kind=SpanKind.PRODUCER, attributes=attributes))

    def trace_context(self, span: Any) -> str | None:
        return encode_context(span.span) if isinstance(span, OtelSpan) else None

    def start_process_span(
        self, name: str, attributes: dict[str, Any], trace_context: str | None
    ) -> OtelSpan:
        parent: otel_context.Context | None = None
        links: list[Link] = []
        if trace_context:
            parent = decode_context(trace_context)
            producer = trace.get_current_span(parent).get_span_context()
            if producer.is_valid:
                links.append(Link(producer))
            else:
                parent = None
        span = self.tracer.start_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
        # Current for the rest of the job's own task (and its `def` processor's thread,
        # which runs in a copy of the task's context); the task ends with the attempt.
        otel_context.attach(trace.set_span_in_context(span))
        return OtelSpan(span)

    # -- metrics --------------------------------------------------------------------------

    def increment(self, name: str, value: float = 1, tags: dict[str, str] | None = None) -> None:
        instrument = self._instruments.get(name)
        if instrument is None:
            if name == METRIC_JOBS_RUNNING:
                instrument = self.meter.create_up_down_counter(name, unit="{job}")
            else:
                instrument = self.meter.create_counter(name, unit="{job}")
            self._instruments[name] = instrument
        instrument.add(value, tags)

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        instrument = self._instruments.get(name)
        if instrument is None:
            instrument = self._instruments[name] = self.meter.create_histogram(name, unit="ms")
        instrument.record(value, tags)
