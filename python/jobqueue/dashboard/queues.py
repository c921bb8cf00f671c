"""Which queues the dashboard shows: the ones it was given, or every queue of the Redis,
found through the index of queue names (``jobqueue.list_queues``, never ``KEYS``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._native import indexed_queues, partition_count
from ..errors import InvalidOptionError
from ..operations import index_key
from ..queue import JobQueue
from ..redis_config import RedisConfig

#: How long a read of the index serves (s): the overview asks for it on every load.
INDEX_TTL_S = 2.0
#: The most queues a dashboard opens from the index (each holds its own connections).
MAX_DISCOVERED = 200


class QueueSet:
    """The dashboard's queues. Given queues are used as they are (the app does not close
    them); discovered ones are opened on first use, with the partition count stored for
    them, and closed by `close()`."""

    def __init__(
        self,
        given: Sequence[JobQueue] | None,
        *,
        redis: RedisConfig | str | Mapping[str, Any] | None = None,
        prefix: str = "jq",
    ) -> None:
        self.discover = given is None
        self.redis = redis
        self.prefix = prefix
        self._queues: dict[str, JobQueue] = {}
        self._opened: list[JobQueue] = []
        self._names: list[str] = []
        self._read_at = 0.0
        self._opening = asyncio.Lock()
        self._reader: JobQueue | None = None
        for queue in given or ():
            if not isinstance(queue, JobQueue):
                raise InvalidOptionError("queues", f"must be JobQueues, got {type(queue).__name__}")
            if queue.name in self._queues:
                raise InvalidOptionError("queues", f"name {queue.name!r} twice")
            self._queues[queue.name] = queue
        if not self.discover and not self._queues:
            raise InvalidOptionError("queues", "must name at least one JobQueue (or be None)")

    async def names(self) -> list[str]:
        """The names shown, sorted for discovered queues, else in the order given."""
        if not self.discover:
            return list(self._queues)
        if not self._names or time.monotonic() - self._read_at > INDEX_TTL_S:
            if self._reader is None:  # one connection for the reads of the index
                self._reader = JobQueue("queue-index", redis=self.redis, prefix=self.prefix)
            found = await indexed_queues(self._reader._native, index_key(self.prefix))
            self._names = found[:MAX_DISCOVERED]
            self._read_at = time.monotonic()
        return self._names

    async def get(self, name: str) -> JobQueue | None:
        """The queue ``name``, or None when the dashboard does not show it."""
        queue = self._queues.get(name)
        if queue is not None or not self.discover:
            return queue
        if name not in await self.names():
            return None
        async with self._opening:  # two requests at once open one JobQueue
            queue = self._queues.get(name)
            if queue is None:
                queue = await self._open(name)
        return queue

    async def _open(self, name: str) -> JobQueue:
        queue = JobQueue(name, redis=self.redis, prefix=self.prefix)
        stored = await partition_count(queue._native, 1)  # reads only: 1 is never stored
        if stored > 1:
            await queue.close()
            queue = JobQueue(name, redis=self.redis, prefix=self.prefix, partitions=stored)
        self._queues[name] = queue
        self._opened.append(queue)
        return queue

    async def all(self) -> list[JobQueue]:
        found = [await self.get(name) for name in await self.names()]
        return [queue for queue in found if queue is not None]

    async def close(self) -> None:
        """Close the queues this set opened."""
        for queue in [*self._opened, *([self._reader] if self._reader else [])]:
            await queue.close()
        self._opened.clear()
        self._reader = None
