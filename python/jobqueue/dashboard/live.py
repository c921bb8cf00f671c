"""Live updates: each queue's fleet event stream (``P:{Q}:events``, one per partition),
followed once per dashboard, and sent to every open page as server-sent events.

An event's id is the position reached in each stream it covers, as a query string
(``emails=1733000000000-0&emails%231=...``). A browser that reconnects sends it back as
``Last-Event-ID``, and the events written meanwhile are read from Redis and sent first:
nothing is lost while the stream's cap (about 2,000 entries) holds them. A response ends
after ``MAX_STREAM_S`` (the browser reconnects at once, resuming), so that a server can
stop without waiting for open pages.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from .._native import NativeQueue
from ..errors import JobQueueError
from ..fleet import JobEvent, parse_entry
from ..partitions import partition_name
from ..queue import JobQueue

#: Entries per read, and how long one read of the hub blocks (ms).
READ_COUNT = 100
READ_BLOCK_MS = 1000
#: The most entries a resume reads from Redis; beyond, the page is told to reload.
MAX_RESUME_ENTRIES = 1000
#: Entries kept for a page that reads slowly; beyond, it is told to reload.
MAX_PENDING = 1000
#: A response ends after this long (s); the browser reconnects and resumes.
MAX_STREAM_S = 60.0
#: A comment line this often (s) keeps proxies from closing a quiet response.
KEEPALIVE_S = 15.0
#: The browser's wait before it reconnects (ms).
RETRY_MS = 1000
#: Jobs listed per event at most (the counts are whole).
MAX_JOBS_LISTED = 100


@dataclass(frozen=True)
class Entry:
    """One entry of a stream: the events of one script call."""

    queue: str
    stream: str
    entry_id: str
    events: list[JobEvent]


def position(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a comparable pair (``"1733-4"`` -> ``(1733, 4)``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def streams_of(queue: JobQueue) -> list[tuple[str, NativeQueue]]:
    """(stream name, its partition) of each partition of ``queue``."""
    return [
        (queue.name if i == 0 else partition_name(queue.name, i), native)
        for i, native in enumerate(queue._natives)
    ]


def encode_id(positions: dict[str, str]) -> str:
    return urlencode(sorted(positions.items()))


def decode_id(text: str | None) -> dict[str, str]:
    """The positions of a ``Last-Event-ID``; anything unreadable is left out."""
    found: dict[str, str] = {}
    for stream, entry_id in parse_qsl(text or "", keep_blank_values=False):
        try:
            position(entry_id)
        except ValueError:
            continue
        found[stream] = entry_id
    return found


class Subscriber:
    """The entries due to one open page."""

    def __init__(self) -> None:
        self.pending: deque[Entry] = deque()
        self.overflowed = False
        self.ready = asyncio.Event()

    def put(self, entry: Entry) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.overflowed = True
        else:
            self.pending.append(entry)
        self.ready.set()


class EventHub:
    """Follows the streams of the queues asked for, one reader per stream, and hands each
    entry to the listeners (the throughput counts) and to the open pages."""

    def __init__(self) -> None:
        self.positions: dict[str, str] = {}
        self.listeners: list[Callable[[Entry], None]] = []
        self._subscribers: set[Subscriber] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._starting = asyncio.Lock()

    async def follow(self, queue: JobQueue, backfill_ms: int = 0) -> None:
        """Follow every stream of ``queue`` from now on (idempotent). The entries of the
        last ``backfill_ms`` still in a stream go to the listeners first."""
        async with self._starting:
            for stream, native in streams_of(queue):
                if stream in self._tasks:
                    continue
                ((newest, _),) = await native.read_events(None, 0, 0)
                if backfill_ms:
                    await self._backfill(queue.name, stream, native, newest, backfill_ms)
                self.positions[stream] = newest
                self._tasks[stream] = asyncio.create_task(
                    self._follow(queue, stream, native, newest),
                    name=f"jobqueue-dashboard-events-{stream}",
                )

    async def _backfill(
        self, queue: str, stream: str, native: NativeQueue, newest: str, since_ms: int
    ) -> None:
        if newest == "0-0":
            return
        after = f"{await native.server_time() - since_ms}-0"
        while position(after) < position(newest):
            entries = await native.read_events(after, READ_COUNT, 1)
            if not entries:
                return
            for entry_id, payload in entries:
                if position(entry_id) > position(newest):
                    return
                after = entry_id
                self._tell_listeners(_entry(queue, stream, entry_id, payload))

    async def _follow(self, queue: JobQueue, stream: str, native: NativeQueue, at: str) -> None:
        pause = 0.1
        while not queue.closed:  # a queue given to the app may be closed by its owner
            try:
                entries = await native.read_events(at, READ_COUNT, READ_BLOCK_MS)
            except JobQueueError:
                await asyncio.sleep(pause)  # Redis away: try again, slower each time
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.1
            for entry_id, payload in entries:
                at = entry_id
                entry = _entry(queue.name, stream, entry_id, payload)
                self.positions[stream] = entry_id
                self._tell_listeners(entry)
                for subscriber in self._subscribers:
                    subscriber.put(entry)

    def _tell_listeners(self, entry: Entry) -> None:
        for listener in self.listeners:
            listener(entry)

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()


def _entry(queue: str, stream: str, entry_id: str, payload: str) -> Entry:
    try:
        events = parse_entry(entry_id, payload)
    except (ValueError, TypeError, IndexError):
        events = []  # an entry of another version: its position still counts
    return Entry(queue, stream, entry_id, events)


def _message(name: str, data: object, positions: dict[str, str] | None = None) -> bytes:
    lines = [f"event: {name}"]
    if positions is not None:
        lines.append(f"id: {encode_id(positions)}")
    lines.append("data: " + orjson.dumps(data).decode())
    return ("\n".join(lines) + "\n\n").encode()


def _jobs_message(entry: Entry, positions: dict[str, str]) -> bytes:
    counts = Counter(event.event.value for event in entry.events)
    jobs = [[e.event.value, e.id] for e in entry.events[:MAX_JOBS_LISTED]]
    data = {"queue": entry.queue, "counts": dict(counts), "jobs": jobs}
    return _message("jobs", data, positions)


async def event_stream(
    request: Request, hub: EventHub, queues: Sequence[JobQueue], max_seconds: float
) -> StreamingResponse:
    """The server-sent events of ``queues`` for one page, resumed from its
    ``Last-Event-ID``: a ``hello`` event with the positions it starts from, a ``jobs``
    event per stream entry (the queue, its events counted by kind, the jobs), and
    ``reload`` when events were lost to the stream's cap or a slow reader."""
    for queue in queues:
        await hub.follow(queue)
    streams = {name: (queue, native) for queue in queues for name, native in streams_of(queue)}
    subscriber = hub.subscribe()  # before the positions are read: nothing falls between
    resume = decode_id(request.headers.get("last-event-id"))
    positions = {s: resume.get(s) or hub.positions.get(s, "0-0") for s in streams}

    async def backlog() -> tuple[list[Entry], bool]:
        entries: list[Entry] = []
        for stream, entry_id in resume.items():
            if stream not in streams:
                continue
            queue, native = streams[stream]
            at = entry_id
            while len(entries) < MAX_RESUME_ENTRIES:
                read = await native.read_events(at, READ_COUNT, 1)
                if not read:
                    break
                for read_id, payload in read:
                    at = read_id
                    entries.append(_entry(queue.name, stream, read_id, payload))
            else:
                return entries, True
        return entries, False

    def start_over(reason: str) -> bytes:
        """``reload``, with the positions of now as its id: the page reloads, and its
        next connection resumes from here rather than from what was lost."""
        now = {s: hub.positions.get(s, "0-0") for s in streams}
        return _message("reload", {"reason": reason}, now)

    async def body() -> AsyncIterator[bytes]:
        ends = time.monotonic() + max_seconds
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            missed, lost = await backlog()
            if lost:
                yield start_over("too many events missed")
                return
            yield _message("hello", {"streams": sorted(streams)}, positions)
            for entry in missed:
                positions[entry.stream] = entry.entry_id
                yield _jobs_message(entry, positions)
            while (left := ends - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(subscriber.ready.wait(), min(left, KEEPALIVE_S))
                except asyncio.TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                subscriber.ready.clear()
                if subscriber.overflowed:
                    yield start_over("events came faster than read")
                    return
                while subscriber.pending:
                    entry = subscriber.pending.popleft()
                    seen = positions.get(entry.stream)
                    if seen is None or position(entry.entry_id) <= position(seen):
                        continue  # another queue's, or sent from the backlog already
                    positions[entry.stream] = entry.entry_id
                    yield _jobs_message(entry, positions)
        finally:
            hub.unsubscribe(subscriber)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
