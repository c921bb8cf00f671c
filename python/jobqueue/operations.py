"""Operator calls of a queue beyond the basics: promote a delayed job, run a schedule now,
and the index of queue names that lets tools find every queue of a Redis.

`Operations` is a base of `JobQueue` (as ``GroupAdmin`` is): the
calls are ``queue.promote_job(id)`` and ``queue.run_schedule_now(schedule_id)``.
`list_queues()` reads the index (docs/redis-layout.md, "The queue index").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _validate as v
from ._native import NativeQueue, index_queue, indexed_queues
from .errors import ConnectionError, InvalidStateError, JobNotFoundError, JobQueueError

if TYPE_CHECKING:
    from .partitions import Partitions
    from .redis_config import RedisConfig

#: The index set of a prefix is ``<prefix>:queues``.
INDEX_SUFFIX = "queues"
#: How often ``run_schedule_now`` tries again when the schedule's next run moved under it
#: (a scheduler claimed a tick at the same moment).
_CLAIM_TRIES = 5


def index_key(prefix: str) -> str:
    """The key of the index of queue names of ``prefix``: ``jq:queues`` by default."""
    return f"{prefix}:{INDEX_SUFFIX}"


class Operations:
    """Mixed into ``JobQueue``: see the module's docstring."""

    name: str
    prefix: str
    _native: NativeQueue
    _partitions: Partitions | None
    #: Whether this queue's name is known to be in the index (written once per process).
    _indexed: bool = False

    def _check_open(self) -> None:
        raise NotImplementedError

    def _report_warning(self, exc: BaseException) -> None:
        raise NotImplementedError

    async def _index(self) -> None:
        """Add the queue's name to the index, once per ``JobQueue``: after its first add
        that went through, its first schedule and its worker start, never per job. It
        never raises (the add it follows went through): a lost connection is tried again
        with the next add, another refusal (an ACL that forbids the key) is a warning,
        once. The index serves tools; it must not stop producers."""
        if self._indexed:
            return
        try:
            await index_queue(self._native, index_key(self.prefix), self.name)
        except ConnectionError:
            return
        except JobQueueError as exc:
            self._report_warning(exc)
        self._indexed = True

    async def promote_job(self, job_id: str) -> None:
        """Move a delayed job to waiting now, as if its delay had ended (attempts and
        options unchanged). Raises ``JobNotFoundError`` for an unknown id and
        ``InvalidStateError`` for a job that is not delayed."""
        self._check_open()
        v.job_id(job_id)
        admin = self._native if self._partitions is None else self._partitions
        await admin.retry_jobs("promote", job_id)

    async def run_schedule_now(self, schedule_id: str) -> str:
        """Enqueue one run of a schedule now, besides its planned runs (its next run stays
        as it was); returns the new job's id. The job is the schedule's own (its
        ``schedule_id`` set, its tick now). Raises ``JobNotFoundError`` for an unknown
        schedule."""
        self._check_open()
        v.job_id(schedule_id, "schedule_id")
        native = self._native  # schedules live in partition 0
        for _ in range(_CLAIM_TRIES):
            rows = {sid: next_run for sid, _, next_run, _ in await native.list_schedules()}
            if schedule_id not in rows:
                raise JobNotFoundError(f"schedule {schedule_id} does not exist")
            planned = rows[schedule_id]
            now = await native.server_time()
            # A claim that leaves the next run where it is and enqueues a tick of now.
            claimed, created = await native.claim_schedule(schedule_id, planned, planned, [now])
            if claimed and created:
                return created[0][0]
        raise InvalidStateError(
            f"schedule {schedule_id} kept changing; its run now was not enqueued, try again"
        )


async def list_queues(
    redis: RedisConfig | str | Mapping[str, Any] | None = None, *, prefix: str = "jq"
) -> list[str]:
    """The names of the queues of ``prefix`` on this Redis, sorted, from the index that
    every queue writes its name to when first used (a partitioned queue once, by its
    name). Queues last used by a release without the index are listed once any process
    of this release adds to them, schedules on them or runs their worker."""
    from .queue import JobQueue

    # Any queue's connection reaches the index: a placeholder name, never written.
    async with JobQueue("queue-index", redis=redis, prefix=prefix) as reader:
        reader._check_open()
        return await indexed_queues(reader._native, index_key(reader.prefix))
