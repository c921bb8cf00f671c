"""``add_jobs`` (and a flow's ``add_flow`` calls) on a Redis connection driven by the
running event loop.

The native connection lives on the Tokio runtime, so each awaited request crosses threads
four times; for one ``add_job`` those wake-ups cost more than Redis itself. This
connection writes and reads on the event loop's own thread through an asyncio transport;
packing requests and parsing replies stay in Rust (``_native.LoopChannel``), once per chunk
read. It is an accelerator: ``ProducerConnections`` uses it when it is open on the running
loop and otherwise uses the native connection, whose connect retries, ready check and TLS
support it does not duplicate. Single adds on it coalesce (``coalesce.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._native import current_pid
from .coalesce import Coalescer
from .errors import ConnectionError, JobQueueError

if TYPE_CHECKING:  # types of the stubs only
    from ._native import AddedJob, FlowFamily, LoopChannel, NativeFlows, NativeQueue, NewJob
logger = logging.getLogger("jobqueue")

#: After a failed connect, the native connection serves alone for this long.
_RETRY_AFTER_S = 1.0
#: Longest wait for this connection to open; the native connection has its own timeout.
_MAX_CONNECT_S = 2.0


class LoopConnection(asyncio.Protocol):
    """One pipelined connection on one event loop (see the module doc)."""

    def __init__(self, channel: LoopChannel, command_timeout_ms: int | None) -> None:
        self._channel = channel
        self._command_timeout = None if command_timeout_ms is None else command_timeout_ms / 1000
        self._loop = asyncio.get_running_loop()
        self._pid = current_pid()
        self._transport: asyncio.Transport | None = None
        self._adds = Coalescer(channel, self._loop, self._send_adds)

    @classmethod
    async def open(cls, native: NativeQueue) -> LoopConnection | None:
        """Connect and hand-shake; None when the connection needs TLS (native only)."""
        found = native.loop_channel()
        if found is None:
            return None
        (kind, host, port, connect_ms, command_ms), channel = found
        loop = asyncio.get_running_loop()
        conn = cls(channel, command_ms)
        timeout = min(connect_ms / 1000, _MAX_CONNECT_S)
        if kind == "unix":
            connecting = loop.create_unix_connection(lambda: conn, host)
        else:
            connecting = loop.create_connection(lambda: conn, host, port)
        await asyncio.wait_for(connecting, timeout)
        try:
            await asyncio.wait_for(conn._request(channel.handshake), timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    def usable_here(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self._transport is not None and self._loop is loop and not self.inherited

    @property
    def closed(self) -> bool:
        return self._transport is None

    @property
    def inherited(self) -> bool:
        """Opened by the parent of this forked process: its socket is not ours to use."""
        return self._pid != current_pid()

    def add_jobs(self, jobs: list[NewJob]) -> asyncio.Future[list[AddedJob]]:
        """Write the request now (bad input raises before anything is written)."""
        return self._request(lambda future: self._channel.add_jobs(jobs, future))

    def add_flow(
        self,
        slot: str,
        rows: list[NewJob],
        families: list[FlowFamily],
        parents: list[tuple[int, int]],
    ) -> asyncio.Future[list[AddedJob]]:
        """``NativeFlows.add`` on this connection; bad input raises before any write."""
        return self._request(
            lambda future: self._channel.add_flow(slot, rows, families, parents, future)
        )

    def add_job(self, job: NewJob) -> asyncio.Future[AddedJob | None]:
        """Send or queue one job (see ``Coalescer.add``)."""
        return self._adds.add(job)

    def hold_adds(self) -> None:
        """Several single adds are about to come at once: let them form one batch."""
        self._adds.expect_more()

    def _request(self, pack: Callable[[asyncio.Future[Any]], bytes]) -> asyncio.Future[Any]:
        transport = self._transport
        if transport is None:
            raise ConnectionError("the event loop's Redis connection is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        transport.write(pack(future))
        self._time(future)
        return future

    def _send_adds(self) -> None:
        """Write the queued single adds as one request."""
        transport = self._transport
        if transport is None:  # closed since they were queued: they go elsewhere
            self._channel.fail_all(ConnectionError("the connection is closed"))
            return
        replied: asyncio.Future[None] | None = None
        if self._command_timeout is not None:
            replied = self._loop.create_future()
        data = self._channel.flush(replied)
        if data is not None:
            transport.write(data)
            if replied is not None:
                self._time(replied)

    def _time(self, future: asyncio.Future[Any]) -> None:
        if self._command_timeout is not None:
            timer = self._loop.call_later(self._command_timeout, self._timed_out, future)
            future.add_done_callback(lambda _: timer.cancel())

    def _timed_out(self, future: asyncio.Future[Any]) -> None:
        # As on the native connection, a request without an answer in time makes the
        # connection untrusted: it is dropped, and every request on it fails.
        if not future.done():
            self._broken(ConnectionError("Redis did not answer within the command timeout"))

    def close(self) -> None:
        self._broken(ConnectionError("the queue's connection was closed"))

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            resend, several = self._channel.feed(data)
        except JobQueueError as exc:
            self._broken(exc)
            return
        if resend is not None and self._transport is not None:
            self._transport.write(resend)
        if several:
            self._adds.expect_more()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._broken(ConnectionError(f"Redis connection failed: connection lost{reason}"))

    def _broken(self, error: JobQueueError) -> None:
        transport, self._transport = self._transport, None
        self._adds.cancel()
        if transport is not None:
            try:
                transport.abort()
            except RuntimeError:  # its event loop is closed; the socket closes with it
                pass
        # Requests written fail; single adds still queued resolve to None and are sent
        # on the native connection by their callers (ProducerConnections.add_job).
        self._channel.fail_all(error)


class ProducerConnections:
    """Chooses the connection for a queue's ``add_jobs`` and ``add_flow`` calls: the event
    loop's own when it is open on the running loop, the native one otherwise.

    The native connection goes first: the loop's connection is opened only after a native
    request succeeded, so connect retries, the ready check (a server still loading its
    data) and error reporting stay the native connection's. The same holds after the
    loop's connection broke or could not open, with at most one attempt per
    ``_RETRY_AFTER_S``."""

    def __init__(self, native: NativeQueue) -> None:
        self._native = native
        self._conn: LoopConnection | None = None
        self._native_ok = False
        self._opening = False
        self._retry_at = 0.0
        self._unavailable = False  # TLS: the native connection serves alone

    async def add_job(self, job: NewJob) -> AddedJob:
        """One job; concurrent calls coalesce on the loop's connection."""
        conn = await self._connection()
        if conn is not None:
            added = await conn.add_job(job)
            if added is not None:
                return added
        return (await self.add_native([job]))[0]

    def expect_adds(self) -> None:
        """Single adds of several callers follow in this event-loop iteration: they go out
        as one batch, the first one not alone (see ``coalesce.py``)."""
        conn = self._conn
        if conn is not None and conn.usable_here(asyncio.get_running_loop()):
            conn.hold_adds()

    async def add_jobs(self, jobs: list[NewJob]) -> list[AddedJob]:
        conn = await self._connection()
        if conn is not None:
            return await conn.add_jobs(jobs)
        return await self.add_native(jobs)

    async def add_native(self, jobs: list[NewJob]) -> list[AddedJob]:
        added = await self._native.add_jobs(jobs)
        self._native_ok = True
        return added

    async def open_here(self) -> None:
        """Open the loop's connection when it is due, for ``add_flow``, whose calls
        are sent from a callback (``flows._SlotBatch``) that cannot wait for it."""
        conn = self._conn
        if conn is None or not conn.usable_here(asyncio.get_running_loop()):
            await self._connection()

    def add_flow(
        self,
        flows: NativeFlows,
        slot: str,
        rows: list[NewJob],
        families: list[FlowFamily],
        parents: list[tuple[int, int]],
    ) -> asyncio.Future[list[AddedJob]]:
        """One add_flow.lua call, sent now (bad input raises here, before any I/O): on
        the loop's connection when it is open here, else by ``flows`` (whose success lets
        the loop's connection open, as ``add_native``'s does)."""
        conn = self._conn
        if conn is not None and conn.usable_here(asyncio.get_running_loop()):
            return conn.add_flow(slot, rows, families, parents)
        reply = asyncio.ensure_future(flows.add(slot, rows, families, parents))
        reply.add_done_callback(self._native_replied)
        return reply

    def _native_replied(self, reply: asyncio.Future[list[AddedJob]]) -> None:
        if not reply.cancelled() and reply.exception() is None:
            self._native_ok = True

    async def _connection(self) -> LoopConnection | None:
        loop = asyncio.get_running_loop()
        conn = self._conn
        if conn is not None:
            if conn.usable_here(loop):
                return conn
            if not conn.closed and not conn.inherited:
                return None  # open on another event loop of this process: leave it be
            # Closed, or inherited through fork() (its socket is the parent's: untouched).
            self._conn = None
            self._native_ok = False
        if not self._native_ok or self._unavailable or self._opening:
            return None
        if time.monotonic() < self._retry_at:
            return None
        self._opening = True
        try:
            conn = await LoopConnection.open(self._native)
        except (OSError, JobQueueError, asyncio.TimeoutError) as exc:
            logger.debug("jobqueue: no event-loop connection to Redis (%s): native one used", exc)
            self._native_ok = False
            self._retry_at = time.monotonic() + _RETRY_AFTER_S
            return None
        finally:
            self._opening = False
        if conn is None:
            self._unavailable = True
        self._conn = conn
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed and not conn.inherited:
            conn.close()
