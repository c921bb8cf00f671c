"""``Job``: what a processor receives."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson

from ._native import NativeWorker
from .errors import InvalidOptionError
from .models import parse_parent, queue_name, split_ref

if TYPE_CHECKING:
    from ._native import RawJob

T = TypeVar("T")


class Job(Generic[T]):
    """One attempt of a job. ``attempts_made`` counts this attempt."""

    __slots__ = (
        "_on_progress",
        "_opts",
        "_opts_json",
        "_parent",
        "_span",
        "_worker",
        "attempts_made",
        "created_at",
        "data",
        "error",
        "group",
        "id",
        "max_attempts",
        "name",
        "processed_at",
        "progress",
        "queue",
        "return_value",
        "timeout",
        "trace_context",
    )

    def __init__(
        self,
        raw: RawJob,
        worker: NativeWorker,
        on_progress: Callable[[Job[Any]], None],
        queue: str = "",
    ) -> None:
        (job_id, name, data, opts, attempts_made, max_attempts, timeout, created_at,
         processed_at, progress, group, (trace_context, parent)) = raw  # fmt: skip
        self.id = job_id
        self.name = name
        #: The name of the job's queue.
        self.queue = queue
        #: The job's group (``add_job(..., group=...)``), or None.
        self.group = group
        self.data: T = orjson.loads(data)
        self._opts_json = opts
        self._opts: dict[str, Any] | None = None
        self.attempts_made = attempts_made
        self.max_attempts = max_attempts
        #: The attempt's time limit in ms, or None.
        self.timeout = timeout
        self.created_at = created_at
        self.processed_at = processed_at
        self.progress: Any = orjson.loads(progress) if progress else 0
        self.return_value: Any = None
        self.error: BaseException | None = None
        #: The producer's trace context stored with the job (see jobqueue.tracing), or None.
        self.trace_context = trace_context
        self._parent = parent  # a flow child's parent ref, read when asked for
        self._span: Any = None  # the attempt's span, with a telemetry adapter
        self._worker = worker
        self._on_progress = on_progress

    @property
    def parent_id(self) -> str | None:
        """A flow's child: its parent's id (see jobqueue.flows); else None."""
        parent = parse_parent(self._parent)
        return None if parent is None else parent[2]

    @property
    def parent_queue(self) -> str | None:
        """A flow's child: its parent's queue; else None."""
        parent = parse_parent(self._parent)
        return None if parent is None else queue_name(parent[1])

    @property
    def timestamp(self) -> int:
        """When the job was added (ms, Redis clock); the same as ``created_at``."""
        return self.created_at

    @property
    def opts(self) -> dict[str, Any]:
        """The job's resolved options (decoded on first use)."""
        if self._opts is None:
            self._opts = orjson.loads(self._opts_json)
        return self._opts

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.name!r}, attempt={self.attempts_made})"

    async def update_progress(self, progress: int | float | dict[str, Any]) -> None:
        """Report progress: a number from 0 to 100, or a JSON object."""
        if isinstance(progress, bool) or not isinstance(progress, (int, float, dict)):
            raise InvalidOptionError(
                "progress", f"must be a number 0-100 or a dict, got {type(progress).__name__}"
            )
        if isinstance(progress, (int, float)) and not (
            math.isfinite(progress) and 0 <= progress <= 100
        ):
            raise InvalidOptionError("progress", f"must be between 0 and 100, got {progress}")
        self.progress = progress
        await self._worker.update(self.id, "progress", progress)
        self._on_progress(self)

    async def log(self, line: str) -> None:
        """Append a line to the job's log (the newest 1,000 lines are kept)."""
        if not isinstance(line, str):
            raise InvalidOptionError("line", f"must be a str, got {type(line).__name__}")
        await self._worker.update(self.id, "log", line)

    async def children_results(self) -> dict[str, Any]:
        """A flow parent's completed children: ``{child id: return value}``; a child of
        another queue is keyed ``"<queue>:<id>"`` (ids of two queues may be equal). Read
        from the parent's own copy of the results, so a child removed by its retention
        still counts."""
        states = await self._worker.children(self.id)
        return {self._child_key(ref): orjson.loads(s[1:]) for ref, s in states if s[:1] == "c"}

    async def children_failures(self) -> dict[str, str]:
        """A flow parent's children that failed for good under ``on_failure="ignore"``:
        ``{child id: failed reason}``, keyed as ``children_results``."""
        states = await self._worker.children(self.id)
        return {self._child_key(ref): s[1:] for ref, s in states if s[:1] == "f"}

    def _child_key(self, ref: str) -> str:
        """A child ref ``<key base> <id>`` as ``children_results`` keys it."""
        slot, child_id = split_ref(ref)
        child_queue = queue_name(slot)
        return child_id if child_queue == self.queue else f"{child_queue}:{child_id}"
