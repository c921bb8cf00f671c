"""Partitioned queues: one queue over N hash tags, so over a Redis Cluster's nodes.

``JobQueue(name, partitions=N)`` with N > 1 keeps its jobs in N queues of their own hash
tag: partition 0 is the queue ``name`` itself (its keys are those of an unpartitioned
queue of that name), partition ``i`` is the queue ``name#i``. Every script still runs on
one partition, in one slot. This module does the routing (which partition a job goes to,
which partition an id lives in) and the fan-out of the calls that concern every partition
(stats, listings, drain, clear, pause, DLQ replay); ``docs/redis-layout.md`` ("Partitions")
and ``docs/guarantees.md`` say what holds per partition and what per queue.

An unpartitioned queue (N = 1) uses none of this: its calls take the paths they took
before, with no per-job work added.
"""

from __future__ import annotations

import asyncio
import random
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from . import _validate as v
from ._native import partition_count, wake_partitions
from .errors import InvalidOptionError
from .events import EventEmitter
from .fleet import FleetListener
from .loop_connection import ProducerConnections

if TYPE_CHECKING:
    from ._native import AddedJob, NativeQueue, NewJob

#: The most partitions a queue may have: each costs every worker process a connection
#: (one fetch loop and one blocking wait serve them all: src/partitions.rs).
MAX_PARTITIONS = 1024
#: Separates a queue's name from a partition's number in the partition's hash tag.
SEPARATOR = "#"
#: A name of the form ``<name>#<digits>``: a partition's hash tag, so no queue's name.
_PARTITION_NAME = re.compile(r".*#\d+", re.DOTALL)
#: A generated id of a partitioned queue: ``<partition>.<hex>``. Custom ids of this form
#: are refused on a partitioned queue (as all-digit ids are on any queue), so the form
#: alone tells an id's partition.
_GENERATED = re.compile(r"(\d+)\.[0-9a-f]+")

_FINAL = ("completed", "failed", "dlq")

#: The raw tuples of ``NativeQueue.get_jobs``: (paused, [(id, fields, logs)]).
RawJobs = tuple[bool, list[tuple[str, dict[str, str], list[str]]]]


def check_count(value: object) -> int:
    return v.integer(value, "partitions", minimum=1, maximum=MAX_PARTITIONS)


def is_partition_name(name: str) -> bool:
    """Whether ``name`` has the form ``<name>#<digits>``, the hash tag of a partition of
    queue ``<name>``: a queue of that name would share that partition's keys."""
    return _PARTITION_NAME.fullmatch(name) is not None


def partition_name(name: str, index: int) -> str:
    """The queue name (so the hash tag) of partition ``index``."""
    return name if index == 0 else f"{name}{SEPARATOR}{index}"


def stable_hash(text: str) -> int:
    """The same in every process and release (``hash()`` of a str is salted)."""
    return zlib.crc32(text.encode())


class Router:
    """Which partition a new job goes to, and which partition an id lives in."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._turn = random.randrange(count)  # producers start at different partitions

    def of_key(self, key: str) -> int:
        return stable_hash(key) % self.count

    def of_id(self, job_id: str) -> int:
        """An id's partition, without a search: generated ids name it, all-digit ids are
        partition 0's (its own generated ids: scheduled jobs), custom ids are hashed."""
        generated = _GENERATED.fullmatch(job_id)
        if generated is not None:
            index = int(generated.group(1))
            return index if index < self.count else self.of_key(job_id)
        if job_id.isdigit():
            return 0
        return self.of_key(job_id)

    def place(self, row: NewJob, partition_key: str | None, field: str) -> int:
        """The job's partition. A group decides it (so a group's limits stay in one slot),
        else the idempotency key (so a repeat finds the first job: keys stay unique per
        queue), else ``partition_key``, else the custom id (so ``of_id`` finds it), else
        round-robin. Every one of them that is set must hash to the same partition: a
        conflict raises before anything is written. A job without a custom id gets its id
        from its partition's script (``<partition>.<counter>``, ``<counter>`` in partition
        0: see ``enqueueJobs`` in lib.lua), so no id needs an EXISTS check."""
        job_id, idem, group = row[0], row[7], row[8]
        if job_id is not None and _GENERATED.fullmatch(job_id):
            raise InvalidOptionError(
                field,
                f"must not have the form <digits>.<hex> on a partitioned queue (those are "
                f"generated ids), got {job_id!r}",
            )
        index: int | None = None
        decided_by = ""
        for what, key in (
            ("group", group),
            ("idempotency_key", idem),
            ("partition_key", partition_key),
            ("job_id", job_id),
        ):
            if key is None:
                continue
            mine = self.of_key(key)
            if index is None:
                index, decided_by = mine, f"its {what} {key!r}"
            elif mine != index:
                where = field.rpartition(".")[0]
                raise InvalidOptionError(
                    f"{where}.{what}" if where else what,
                    f"on a partitioned queue {decided_by} decides the job's partition, and "
                    f"{what} {key!r} hashes to another partition: leave it out, or pick one of "
                    f"the same partition",
                )
        if index is None:
            self._turn = index = (self._turn + 1) % self.count
        return index


class Partitions:
    """The partitions of one queue and the calls that route to them or fan out. It has
    the methods of ``NativeQueue`` that ``JobQueue`` calls for reading and managing, so
    the queue calls it in place of its partition-0 ``NativeQueue``."""

    def __init__(
        self, name: str, count: int, first: NativeQueue, make: Callable[[str], NativeQueue]
    ) -> None:
        self.name = name
        self.count = count
        self.router = Router(count)
        self.natives: list[NativeQueue] = [first] + [
            make(partition_name(name, i)) for i in range(1, count)
        ]
        self._producers: list[ProducerConnections] | None = None
        self._checked = False

    # -- agreement on the count -----------------------------------------------------------

    async def check(self) -> None:
        """Refuse a queue stored with another partition count (claims it on a new queue)."""
        if not self._checked:
            await check_stored(self.natives[0], self.name, self.count)
            self._checked = True

    # -- producing ------------------------------------------------------------------------

    def place(
        self, rows: list[NewJob], partition_keys: list[str | None], single: bool
    ) -> list[tuple[int, NewJob]]:
        """Every row's partition; a bad one raises before anything is written."""
        return [
            (self.router.place(row, key, "job_id" if single else f"jobs[{i}].job_id"), row)
            for i, (row, key) in enumerate(zip(rows, partition_keys, strict=True))
        ]

    async def add(self, placed: list[tuple[int, NewJob]], single: bool) -> list[AddedJob]:
        """One add call per partition that gets jobs, all at once; results in row order."""
        await self.check()
        if self._producers is None:
            self._producers = [ProducerConnections(native) for native in self.natives]
        if single:
            index, row = placed[0]
            added = await self._producers[index].add_job(row)
            if added[1] and index > 0:
                await self.wake((index,))
            return [added]
        positions: dict[int, list[int]] = {}
        for position, (index, _) in enumerate(placed):
            positions.setdefault(index, []).append(position)
        parts = list(positions.items())
        replies = await asyncio.gather(
            *(
                self._producers[index].add_jobs([placed[p][1] for p in where])
                for index, where in parts
            )
        )
        results: list[AddedJob | None] = [None] * len(placed)
        for (_, where), reply in zip(parts, replies, strict=True):
            for position, added in zip(where, reply, strict=True):
                results[position] = added
        done = [added for added in results if added is not None]
        await self.wake(index for (index, _), added in zip(placed, done, strict=True) if added[1])
        return done

    async def wake(self, indices: Iterable[int] | None = None) -> None:
        """Tell idle workers that these partitions (default: all) have work. Partition 0's
        scripts wake its workers themselves; the others' cannot write to partition 0's
        slot, so the caller does (src/partitions.rs)."""
        chosen = range(1, self.count) if indices is None else indices
        parts = sorted({index for index in chosen if index > 0})
        if parts:
            await wake_partitions(self.natives[0], parts)

    def close(self) -> None:
        for producer in self._producers or ():
            producer.close()
        for native in self.natives[1:]:  # partition 0 is the queue's own: it closes it
            native.close()

    # -- one job: its own partition -------------------------------------------------------

    def of_id(self, job_id: str) -> NativeQueue:
        return self.natives[self.router.of_id(job_id)]

    def of_group(self, group: str) -> int:
        return self.router.of_key(group)

    async def get_job(self, job_id: str) -> tuple[dict[str, str], list[str], bool] | None:
        await self.check()
        return await self.of_id(job_id).get_job(job_id)

    async def remove_job(self, job_id: str) -> list[str]:
        await self.check()
        return await self.of_id(job_id).remove_job(job_id)

    # -- every partition ------------------------------------------------------------------

    async def get_jobs(self, status: str, limit: int, group: str | None = None) -> RawJobs:
        await self.check()
        if group is not None:
            return await self.natives[self.of_group(group)].get_jobs(status, limit, group)
        replies = await asyncio.gather(*(n.get_jobs(status, limit) for n in self.natives))
        paused = any(p for p, _ in replies)
        if status in _FINAL:  # newest first across partitions
            merged = sorted(
                (job for _, jobs in replies for job in jobs),
                key=lambda job: -int(job[1].get("finished_at") or 0),
            )
        else:  # in each partition's order, taking from the partitions in turn
            longest = max(len(jobs) for _, jobs in replies)
            merged = [
                jobs[rank] for rank in range(longest) for _, jobs in replies if rank < len(jobs)
            ]
        return paused, merged[:limit]

    async def get_stats(self) -> tuple[int, int, int, int, int, int, bool, int, int]:
        await self.check()
        replies = await asyncio.gather(*(n.get_stats() for n in self.natives))
        sums = [sum(reply[i] for reply in replies) for i in (0, 1, 2, 3, 4, 5, 8)]
        paused = any(reply[6] for reply in replies)
        latency = max(reply[7] for reply in replies)
        return sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], paused, latency, sums[6]

    async def drain(self, include_delayed: bool) -> int:
        await self.check()
        return sum(await asyncio.gather(*(n.drain(include_delayed) for n in self.natives)))

    async def clear(self) -> int:
        await self.check()
        return sum(await asyncio.gather(*(n.clear() for n in self.natives)))

    async def set_paused(self, paused: bool) -> None:
        await self.check()
        await asyncio.gather(*(n.set_paused(paused) for n in self.natives))
        if not paused:
            await self.wake()

    async def health(self) -> tuple[float, str, int, str | None]:
        """The slowest partition's round trip; partition 0's version and workers (every
        worker of the queue serves partition 0); why scripts run by EVALSHA on the first
        partition whose node does so (None: FCALL on all)."""
        await self.check()
        replies = await asyncio.gather(*(n.health() for n in self.natives))
        evalsha = next((r[3] for r in replies if r[3] is not None), None)
        return max(r[0] for r in replies), replies[0][1], replies[0][2], evalsha

    async def retry_jobs(self, mode: str, target: str) -> list[str]:
        await self.check()
        try:
            return await self._retry_jobs(mode, target)
        finally:
            await self.wake()

    async def _retry_jobs(self, mode: str, target: str) -> list[str]:
        if mode in ("job", "promote"):
            return await self.of_id(target).retry_jobs(mode, target)
        if target == "-1":
            replies = await asyncio.gather(*(n.retry_jobs(mode, target) for n in self.natives))
            return [job_id for ids in replies for job_id in ids]
        # A bounded retry takes from one partition after another until the bound is met.
        left, moved = int(target), []
        for native in self.natives:
            if left <= 0:
                break
            ids = await native.retry_jobs(mode, str(left))
            moved.extend(ids)
            left -= len(ids)
        return moved


async def check_stored(first: NativeQueue, name: str, count: int) -> None:
    """Refuse when the queue's stored partition count is not ``count``."""
    stored = await partition_count(first, count)
    if stored != count:
        raise InvalidOptionError(
            "partitions",
            f"queue {name!r} is stored with {stored} partition(s), this JobQueue was made "
            f"with partitions={count}: every process of a queue must use the same count "
            f"(changing the count of a queue in use is not supported)",
        )


class FleetListeners:
    """One fleet listener per partition, all delivering to the queue's fleet handlers
    (each partition's events are in its own stream, in its own slot)."""

    def __init__(self, natives: Sequence[NativeQueue], emitter: EventEmitter) -> None:
        self._listeners = [FleetListener(native, emitter) for native in natives]

    def start_soon(self) -> None:
        for listener in self._listeners:
            listener.start_soon()

    async def start(self) -> None:
        await asyncio.gather(*(listener.start() for listener in self._listeners))

    @property
    def following(self) -> bool:
        return all(listener.following for listener in self._listeners)

    async def stop(self) -> None:
        await asyncio.gather(*(listener.stop() for listener in self._listeners))


def fleet_listener(
    natives: Sequence[NativeQueue], emitter: EventEmitter
) -> FleetListener | FleetListeners:
    return (
        FleetListener(natives[0], emitter)
        if len(natives) == 1
        else FleetListeners(natives, emitter)
    )


__all__ = [
    "MAX_PARTITIONS",
    "FleetListeners",
    "Partitions",
    "Router",
    "check_count",
    "check_stored",
    "fleet_listener",
    "partition_name",
]
