"""Limits across the fleet: the queue's global concurrency, and groups.

A job added with ``group="tenant-42"`` runs within its group's limits (a concurrency and a
rate, its own or the queue's default for groups), counted across all workers, and groups
take turns: each fetch visits the groups with waiting work round-robin, so a group with a
million waiting jobs delays another group's one job by at most one round. Everything is
stored in Redis and enforced by the worker scripts (see docs/redis-layout.md); these
calls only change it. `GroupAdmin` is a base of `JobQueue`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from . import _validate as v
from ._native import NativeGroups, NativeQueue
from .config import RateLimit
from .models import GroupStats

if TYPE_CHECKING:
    from .partitions import Partitions

#: The highest concurrency accepted (global or per group).
MAX_CONCURRENCY = 1_000_000

RateSpec = RateLimit | tuple[int, int] | Mapping[str, Any]
"""A rate: a `RateLimit`, ``(max, duration ms)`` or ``{"max", "duration"}``."""


def concurrency(value: object, field: str) -> int:
    return v.integer(value, field, minimum=1, maximum=MAX_CONCURRENCY)


class GroupAdmin:
    """The group and fleet-limit calls of a queue (mixed into ``JobQueue``)."""

    _native: NativeQueue
    _partitions: Partitions | None
    _groups_natives: list[NativeGroups] | None = None

    def _check_open(self) -> None:
        raise NotImplementedError

    @property
    def _every_groups(self) -> list[NativeGroups]:
        """The group calls of each partition (one, unpartitioned)."""
        if self._groups_natives is None:
            natives = [self._native] if self._partitions is None else self._partitions.natives
            self._groups_natives = [NativeGroups(native) for native in natives]
        return self._groups_natives

    def _groups(self, group: str = "") -> NativeGroups:
        """The group calls of ``group``'s partition: all its jobs are there."""
        every = self._every_groups
        return every[0] if self._partitions is None else every[self._partitions.of_group(group)]

    async def set_global_concurrency(self, limit: int | None) -> None:
        """At most ``limit`` jobs of the queue are active at once across all workers
        (prefetched jobs count: they are held active); None removes the limit. On a
        partitioned queue the limit is stored in partition 0 and is the whole queue's:
        workers take slots there before they fetch from any partition (src/partitions.rs,
        docs/guarantees.md); running workers see a new limit within their next fetch of
        partition 0."""
        self._check_open()
        value = None if limit is None else concurrency(limit, "concurrency")
        if self._partitions is not None:
            await self._partitions.check()  # claims the count of a new queue first
        # Partitions > 0 hold no limit (one an earlier release split there is removed).
        every = self._every_groups
        await asyncio.gather(
            *(groups.set_concurrency(value if i == 0 else None) for i, groups in enumerate(every))
        )
        if self._partitions is not None:
            await self._partitions.wake()

    async def set_group_limit(
        self,
        group: str,
        *,
        concurrency: int | None = None,
        rate: RateSpec | None = None,
    ) -> None:
        """Limit ``group``: at most ``concurrency`` of its jobs active at once and at most
        ``rate.max`` started per ``rate.duration`` ms, across all workers. Replaces the
        group's limits whole; a limit left None falls back to the default (see
        `set_default_group_limit()`)."""
        self._check_open()
        name = v.group(group)
        await self._set_limit(name, concurrency, rate)

    async def remove_group_limit(self, group: str) -> None:
        """Remove the limits of ``group`` (the default group limit applies again)."""
        self._check_open()
        await self._set_limit(v.group(group), None, None)

    async def set_default_group_limit(
        self, *, concurrency: int | None = None, rate: RateSpec | None = None
    ) -> None:
        """The limits of every group without a limit of its own; both None removes them."""
        self._check_open()
        await self._set_limit("", concurrency, rate)

    async def _set_limit(self, group: str, limit: int | None, spec: RateSpec | None) -> None:
        checked = None if limit is None else concurrency(limit, "concurrency")
        rate_limit = None if spec is None else RateLimit.coerce(spec, "rate")
        window = None if rate_limit is None else (rate_limit.max, v.stored_ms(rate_limit.duration))
        event = orjson.dumps(
            {
                "concurrency": checked,
                "rate": None if window is None else {"max": window[0], "duration": window[1]},
            }
        ).decode()
        targets = self._every_groups if group == "" else [self._groups(group)]
        await asyncio.gather(*(g.set_limit(group, checked, window, event) for g in targets))
        if self._partitions is not None:
            await self._partitions.wake()

    async def pause_group(self, group: str) -> None:
        """Stop starting jobs of ``group`` on every worker; other groups keep running. Its
        running jobs finish; its waiting jobs stay."""
        self._check_open()
        name = v.group(group)
        await self._groups(name).set_paused(name, True)

    async def resume_group(self, group: str) -> None:
        self._check_open()
        name = v.group(group)
        await self._groups(name).set_paused(name, False)
        if self._partitions is not None:
            await self._partitions.wake()

    async def get_group_stats(self, group: str) -> GroupStats:
        """The state of one group (also ``get_stats(group=...)``)."""
        self._check_open()
        name = v.group(group)
        waiting, active, limit, window, paused, own, until = await self._groups(name).stats(name)
        return GroupStats(
            group=name,
            waiting=waiting,
            active=active,
            paused=paused,
            concurrency=limit,
            rate=None if window is None else RateLimit(*window),
            own_limits=own,
            rate_limited_until=until,
        )
