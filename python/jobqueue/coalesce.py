"""Single adds from concurrent callers go out together as one ``add_jobs`` call.

A service that awaits ``add_job`` from many request handlers at once would send one
script call per add; Redis runs a one-job call at the cost of several jobs of a batch.
On the event loop's connection (``loop_connection.py``) an add that finds the connection
idle is sent at once, as before. One that comes while a request is in flight, or while a
flush is already due, is checked (bad input raises to its caller, before anything is
queued) and queued in the native channel; a flush at the end of the current event-loop
iteration (``call_soon``, never a timer) sends all queued adds as one call, and its
reply settles each caller with its own job or the batch's error.

When a reply answers several callers, they wake in the next iteration and typically add
again; a flush is then scheduled right behind their wake-ups, so their adds join one
batch instead of the first one going out alone. Half of such a wave goes as soon as the
connection is idle (the native channel decides, ``State::eager`` in ``loop_conn.rs``): Redis
runs that batch while the producer checks the other half, instead of the two taking turns.

``ThreadCoalescer`` does the same for the blocking facade (``sync.py``) when its adds
must go through the loop (with telemetry or fleet handlers; otherwise they are batched
in the native core, ``src/blocking_add.rs``), whose callers are threads: handing each
add to the event loop's thread and back costs several thread wake-ups, far more than
the add. Callers queue their calls; one of them, the leader,
hands all queued calls to the loop at once (where they coalesce as above) and wakes each
caller with its own outcome, then passes the lead to a caller queued meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:  # types of the stubs only
    from ._native import AddedJob, LoopChannel, NewJob


class Coalescer:
    """The single adds of one loop connection; ``send`` writes the queued batch."""

    __slots__ = ("_channel", "_flush_handle", "_loop", "_send")

    def __init__(
        self, channel: LoopChannel, loop: asyncio.AbstractEventLoop, send: Callable[[], None]
    ) -> None:
        self._channel = channel
        self._loop = loop
        self._send = send
        self._flush_handle: asyncio.Handle | None = None

    def add(self, job: NewJob) -> asyncio.Future[AddedJob | None]:
        """Send or queue ``job``; its future resolves to the added job, or to None when it
        was never sent (the connection closed first). Bad input raises here."""
        future: asyncio.Future[AddedJob | None] = self._loop.create_future()
        if self._channel.submit(job, future, self._flush_handle is not None):
            self._send()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)
        return future

    def expect_more(self) -> None:
        """Callers of a batch are waking: hold adds until they all ran."""
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def cancel(self) -> None:
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()

    def _flush(self) -> None:
        self._flush_handle = None
        self._send()


Call = TypeVar("Call")
Result = TypeVar("Result")


class _Slot(Generic[Call, Result]):
    """One blocked caller: its call, then its outcome. ``wake`` is held until the caller
    may go on (outcome set, or the lead passed to it)."""

    __slots__ = ("call", "lead", "outcome", "wake")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.lead = False
        self.outcome: Result | BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class ThreadCoalescer(Generic[Call, Result]):
    """Runs the calls of many threads in batches: ``run`` gets the calls queued since the
    last batch and returns one outcome (a result or an exception) per call, in order."""

    def __init__(self, run: Callable[[list[Call]], Sequence[Result | BaseException]]) -> None:
        self._run = run
        self._mutex = threading.Lock()
        self._queued: list[_Slot[Call, Result]] = []
        self._leading = False

    def call(self, call: Call) -> Result:
        slot: _Slot[Call, Result] = _Slot(call)
        with self._mutex:
            self._queued.append(slot)
            lead, self._leading = not self._leading, True
        if not lead:
            slot.wake.acquire()  # until the outcome is there, or the lead passed here
            lead = slot.lead
        if lead:
            self._lead()
        outcome = slot.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]

    def _lead(self) -> None:
        # The leader's own slot is queued, so this batch answers it.
        with self._mutex:
            batch, self._queued = self._queued, []
        try:
            outcomes: Sequence[Result | BaseException] = self._run([s.call for s in batch])
        except BaseException as exc:  # the loop is gone, or this thread was interrupted
            outcomes = [exc] * len(batch)
        successor = None
        with self._mutex:
            if self._queued:
                successor = self._queued[0]
                successor.lead = True
            else:
                self._leading = False
        for slot, outcome in zip(batch, outcomes, strict=True):
            slot.outcome = outcome
            if not slot.lead:
                slot.wake.release()
        if successor is not None:
            successor.wake.release()
