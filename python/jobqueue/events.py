"""Queue events and the local dispatcher of their handlers.

Handlers may be plain functions or coroutines. A handler that takes one parameter gets
just the job; others get ``(job, error)``. A handler that raises never breaks the queue:
its error is reported through ``QUEUE_ERROR`` (or logged, if that handler fails too).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from . import _validate as v
from .errors import InvalidOptionError
from .models import ValueEnum

logger = logging.getLogger("jobqueue")


class QueueEvent(ValueEnum):
    JOB_ADDED = "job-added"
    JOB_STARTED = "job-started"
    JOB_COMPLETED = "job-completed"
    JOB_FAILED = "job-failed"
    JOB_RETRYING = "job-retrying"
    JOB_STALLED = "job-stalled"
    JOB_PROGRESS = "job-progress"
    JOB_DLQ = "job-dlq"
    # Fleet events of flows (docs/flows.md): a parent added to wait for its children, and
    # a parent whose children are all done (it becomes waiting, or delayed).
    JOB_WAITING_CHILDREN = "job-waiting-children"
    JOB_CHILDREN_DONE = "job-children-done"
    # Fleet events of a group (``JobEvent.name`` is the group, "" for the default limit).
    GROUP_PAUSED = "group-paused"
    GROUP_RESUMED = "group-resumed"
    GROUP_LIMIT_CHANGED = "group-limit-changed"
    QUEUE_ERROR = "queue-error"


Handler = Callable[..., Any]


def _takes_job_only(handler: Handler) -> bool:
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature get both arguments
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    return len(positional) == 1 and not variadic


def coerce_event(event: object) -> QueueEvent:
    return v.member(QueueEvent, event, "event")


class EventEmitter:
    def __init__(self) -> None:
        self._handlers: dict[QueueEvent, list[tuple[Handler, bool]]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()

    def on(self, event: QueueEvent | str, handler: Handler) -> None:
        if not callable(handler):
            raise InvalidOptionError("handler", f"must be callable, got {v.type_name(handler)}")
        self._handlers.setdefault(coerce_event(event), []).append(
            (handler, _takes_job_only(handler))
        )

    def off(self, event: QueueEvent | str, handler: Handler) -> None:
        handlers = self._handlers.get(coerce_event(event), [])
        for i, (registered, _) in enumerate(handlers):
            if registered == handler:
                del handlers[i]
                return

    def has_handlers(self, event: QueueEvent) -> bool:
        return bool(self._handlers.get(event))

    def emit(self, event: QueueEvent, job: Any, error: BaseException | None = None) -> None:
        handlers = self._handlers.get(event)
        if not handlers:  # the common case, on the path of every job
            return
        for handler, job_only in list(handlers):
            try:
                result = handler(job) if job_only else handler(job, error)
                if inspect.isawaitable(result):
                    self._track(event, asyncio.ensure_future(result))
            except Exception as exc:
                self._handler_failed(event, exc)

    def report_error(self, exc: BaseException, what: str, *, warning: bool = False) -> None:
        """An error of background work: to the ``QUEUE_ERROR`` handlers, or to the log
        (``what`` says what failed). A ``warning`` (a finding a person must act on, such
        as an unsafe Redis setting) goes to both, and is logged without a traceback."""
        handled = self.has_handlers(QueueEvent.QUEUE_ERROR)
        if handled:
            self.emit(QueueEvent.QUEUE_ERROR, None, exc)
        if warning:
            logger.warning("jobqueue: %s", what)
        elif not handled:
            logger.error("jobqueue: %s", what, exc_info=exc)

    async def wait_idle(self) -> None:
        """Wait for the async handlers still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _track(self, event: QueueEvent, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._tasks.discard(t)
            error = None if t.cancelled() else t.exception()
            if error is not None:
                self._handler_failed(event, error)

        task.add_done_callback(done)

    def _handler_failed(self, event: QueueEvent, exc: BaseException) -> None:
        if event is QueueEvent.QUEUE_ERROR or not self.has_handlers(QueueEvent.QUEUE_ERROR):
            logger.error("jobqueue: %s handler raised", event.value, exc_info=exc)
            return
        self.emit(QueueEvent.QUEUE_ERROR, None, exc)
