"""Recurring jobs: cron and interval schedules, fired exactly once per tick by any number
of scheduler processes.

A schedule lives in Redis (see docs/redis-layout.md): its definition, and its next run in
a sorted set. Every worker process runs a `Scheduler` (``WorkerConfig(scheduler=
False)`` turns it off). A scheduler sleeps until the earliest next run (on the Redis
server's clock; a change of schedules wakes it), then claims that tick with one
compare-and-set script that also enqueues the job, under the idempotency key
``schedule:<id>:<tick>``. However many schedulers race, one claim wins per tick.

Time zones and DST: cron times are computed by croniter in the schedule's time zone
(``tz``, an IANA name; default UTC), as croniter does it. On a spring-forward day a tick
inside the skipped hour runs at the first valid time after it (``30 2 * * *`` in New York
runs at 03:00 on 2026-03-08); on a fall-back day a tick inside the repeated hour runs in
both of its occurrences (``30 1 * * *`` runs at 01:30 EDT and at 01:30 EST on 2026-11-01).
Use UTC schedules where that matters.

Misfires (no scheduler ran when ticks were due): ``misfire="skip"`` (default) runs the
schedule once for the latest missed tick, then continues on the pattern;
``misfire="run_all"`` enqueues every missed tick, at most ``max_catch_up`` (the latest ones).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from . import _validate as v
from ._native import to_json
from .errors import InvalidCronError, InvalidOptionError
from .events import QueueEvent
from .models import JobInfo, JobStatus, ScheduleInfo

if TYPE_CHECKING:
    from croniter import croniter

    from ._native import NativeQueue
    from .queue import JobQueue

logger = logging.getLogger("jobqueue")

Misfire = Literal["skip", "run_all"]
MISFIRE_POLICIES: tuple[str, ...] = ("skip", "run_all")
#: Longest a scheduler sleeps without looking at the schedules again: a safety net for a
#: wake-up that went to a scheduler which then died.
MAX_SLEEP_MS = 10_000
#: Pause after an unexpected error, so that a persistent fault does not spin.
ERROR_PAUSE_S = 1.0
#: When a definition cannot be planned, look at it again after this long.
BROKEN_RETRY_MS = 60_000


def time_zone(name: str | None) -> tzinfo:
    if name is None:
        return timezone.utc
    if not isinstance(name, str) or not name:
        raise InvalidOptionError("tz", f"must be an IANA time zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidOptionError("tz", f"is not a known time zone: {name!r}") from None


def check_cron(expression: object) -> str:
    """A cron expression of 5 fields, or 6 with seconds first (as BullMQ)."""
    if not isinstance(expression, str):
        raise InvalidCronError("cron", f"must be a str, got {v.type_name(expression)}")
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise InvalidCronError(
            "cron", f"must have 5 fields, or 6 with seconds first, got {expression!r}"
        )
    from croniter import croniter  # imported on first use: it (and dateutil) cost ~15 ms

    if not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        raise InvalidCronError("cron", f"is not a valid cron expression: {expression!r}")
    return " ".join(fields)


def _iterator(expression: str, tz: tzinfo, at_ms: int) -> croniter:
    from croniter import croniter

    start = datetime.fromtimestamp(at_ms / 1000, tz)
    return croniter(expression, start, second_at_beginning=len(expression.split()) == 6)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def cron_next(expression: str, tz: tzinfo, after_ms: int) -> int:
    """The first tick strictly after ``after_ms``."""
    return _ms(_iterator(expression, tz, after_ms).get_next(datetime))


def cron_latest(expression: str, tz: tzinfo, at_ms: int, count: int) -> list[int]:
    """Up to ``count`` latest ticks at or before ``at_ms``, oldest first."""
    it = _iterator(expression, tz, at_ms + 1)
    ticks = [_ms(it.get_prev(datetime)) for _ in range(count)]
    return ticks[::-1]


@dataclass(frozen=True)
class ScheduleDefinition:
    """What Redis stores of a schedule (as JSON), and how its ticks are planned."""

    name: str
    data: str  # the job's data, as JSON text
    opts: str  # the job's resolved options, as JSON text
    priority: int
    delay: int
    max_attempts: int
    cron: str | None
    tz: str | None
    every: int | None
    jitter: int
    misfire: str
    max_catch_up: int

    @property
    def signature(self) -> str:
        """The pattern: changing it restarts the schedule from its next tick."""
        if self.cron is not None:
            return f"cron:{self.cron}|{self.tz or 'UTC'}"
        return f"every:{self.every}|{self.jitter}"

    def default_id(self) -> str:
        canonical = orjson.dumps(orjson.loads(self.data), option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha1(
            b"\0".join([self.name.encode(), canonical, self.signature.encode()])
        ).hexdigest()
        return f"sch-{digest[:20]}"

    def to_json(self) -> str:
        fields = dict(self.__dict__)
        fields["signature"] = self.signature
        return orjson.dumps(fields).decode()

    @classmethod
    def from_json(cls, raw: str) -> ScheduleDefinition:
        fields = orjson.loads(raw)
        fields.pop("signature", None)
        return cls(**fields)

    def _jitter(self) -> int:
        return random.randint(0, self.jitter) if self.jitter else 0

    def first_run(self, now: int) -> int:
        if self.cron is not None:
            return cron_next(self.cron, time_zone(self.tz), now)
        assert self.every is not None
        return now + self.every + self._jitter()

    def plan(self, due: int, now: int) -> tuple[list[int], int]:
        """The ticks to enqueue for a schedule due at ``due`` (<= ``now``), and its next
        run after them."""
        if self.cron is not None:
            tz = time_zone(self.tz)
            following = cron_next(self.cron, tz, due)
            if following > now:  # on time (or a little late): just this tick
                return [due], following
            missed = cron_latest(self.cron, tz, now, self._catch_up())
            ticks = [t for t in missed if t >= due] or [due]
            return ticks, cron_next(self.cron, tz, now)
        assert self.every is not None
        if due + self.every > now:
            return [due], due + self.every + self._jitter()
        latest = due + (now - due) // self.every * self.every
        count = min(self._catch_up(), (latest - due) // self.every + 1)
        ticks = [latest - i * self.every for i in range(count)][::-1]
        return ticks, latest + self.every + self._jitter()

    def _catch_up(self) -> int:
        return self.max_catch_up if self.misfire == "run_all" else 1

    def info(self, schedule_id: str, next_run: int, last_run: int) -> ScheduleInfo:
        return ScheduleInfo(
            id=schedule_id,
            name=self.name,
            data=orjson.loads(self.data),
            cron=self.cron,
            every=self.every,
            tz=self.tz,
            next_run_at=None if next_run < 0 else next_run,
            last_run_at=None if last_run < 0 else last_run,
            jitter=self.jitter,
            misfire=self.misfire,
        )


def check_misfire(misfire: object, max_catch_up: object) -> None:
    if misfire not in MISFIRE_POLICIES:
        raise InvalidOptionError(
            "misfire", f"must be one of {', '.join(MISFIRE_POLICIES)}, got {misfire!r}"
        )
    v.integer(max_catch_up, "max_catch_up", minimum=1, maximum=10_000)


def data_json(name: str, data: Any) -> str:
    return to_json(data, f"data of schedule {name!r}")


class Scheduler:
    """Fires the queue's due schedules; any number may run at once."""

    def __init__(self, queue: JobQueue, native: NativeQueue) -> None:
        self._queue = queue
        self._native = native
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="jobqueue-scheduler"),
            asyncio.create_task(self._listen(), name="jobqueue-scheduler-changes"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def schedules_changed(self) -> None:
        self._changed.set()

    async def _listen(self) -> None:
        # Redis wakes a blocked BLPOP at its timeout only to within 1/hz (100 ms by
        # default), too coarse for second-level cron. So timing is done by a local timer,
        # and Redis only reports changes: a scheduler added or moved a schedule.
        while True:
            try:
                if await self._native.wait_schedule_change(MAX_SLEEP_MS):
                    self._changed.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._queue._report_error(exc)
                await asyncio.sleep(ERROR_PAUSE_S)

    async def _sleep(self, ms: int) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), ms / 1000)
        except asyncio.TimeoutError:
            pass

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._queue._report_error(exc)
                await asyncio.sleep(ERROR_PAUSE_S)

    async def _step(self) -> None:
        self._changed.clear()  # before reading: a change from now on cuts the sleep short
        now, head = await self._native.next_schedule()
        if head is None:
            await self._sleep(MAX_SLEEP_MS)
            return
        schedule_id, due, raw = head
        if due > now:
            await self._sleep(min(due - now, MAX_SLEEP_MS))
            return
        try:
            definition = ScheduleDefinition.from_json(raw)
            ticks, next_run = definition.plan(due, now)
        except Exception as exc:
            # Unplannable (e.g. written by an incompatible version): report it, and look
            # again later instead of spinning on it.
            self._queue._report_error(exc)
            await self._native.claim_schedule(schedule_id, due, now + BROKEN_RETRY_MS, [])
            return
        claimed, created = await self._native.claim_schedule(schedule_id, due, next_run, ticks)
        if claimed and created:
            self._announce(definition, created)

    def _announce(self, definition: ScheduleDefinition, created: list[tuple[str, int]]) -> None:
        events = self._queue._events
        if not events.has_handlers(QueueEvent.JOB_ADDED):
            return
        for job_id, tick in created:
            events.emit(
                QueueEvent.JOB_ADDED,
                JobInfo(
                    id=job_id,
                    name=definition.name,
                    status=JobStatus.DELAYED if definition.delay else JobStatus.WAITING,
                    data=orjson.loads(definition.data),
                    max_attempts=definition.max_attempts,
                    created_at=tick,
                    delay=definition.delay,
                    priority=definition.priority,
                    opts=orjson.loads(definition.opts),
                    scheduled_for=tick,
                ),
            )
