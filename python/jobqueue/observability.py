"""The shapes of the metrics and tracing adapters a queue accepts, and the names of the
metrics it reports (all tagged with ``queue``):

- ``jobqueue.jobs.added`` (counter): jobs enqueued (idempotent repeats not counted).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from . import _validate as v
from .errors import InvalidOptionError

METRIC_JOBS_ADDED = "jobqueue.jobs.added"


@runtime_checkable
class MetricsAdapter(Protocol):
    def increment(self, name: str, value: float = 1, tags: dict[str, str] | None = None) -> Any: ...

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> Any: ...


class Span(Protocol):
    def set_attribute(self, key: str, value: Any) -> Any: ...

    def record_exception(self, error: BaseException) -> Any: ...

    def end(self) -> Any: ...


@runtime_checkable
class Telemetry(Protocol):
    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> Span: ...


def check_adapter(value: object, protocol: type, name: str) -> Any:
    if value is not None and not isinstance(value, protocol):
        methods = ", ".join(
            m for m in ("increment", "observe", "start_span") if hasattr(protocol, m)
        )
        raise InvalidOptionError(name, f"must have the methods {methods}, got {v.type_name(value)}")
    return value
