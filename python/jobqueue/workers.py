"""The workers registry: which workers of a queue are alive, and what they do.

Each worker's heartbeat (the lock-renew call it makes every ``lock_renew_time``, in the
native core) keeps it in the queue's ``workers`` sorted set, scored by a deadline two
renew periods ahead, and writes its description to the ``workers:info`` hash: its id,
host, pid, queue, concurrency, running jobs, attempts processed and failed, when it
started and the jobqueue version. A worker that closes leaves at once; one that died
drops out when its deadline passes (the next heartbeat of any worker removes it). Nothing
is written per job. See docs/redis-layout.md.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson

from ._native import NativeQueue, NativeRegistry, __version__

#: The release every heartbeat names: the one version, from Cargo.toml (no metadata read).
VERSION = __version__


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker. ``started_at`` is the worker host's clock (ms); ``heartbeat_until``
    the Redis clock (ms) until which it counts as alive without another heartbeat.
    ``processed`` counts attempts finished (completed or failed), ``failed`` the failed
    ones, as of its last heartbeat."""

    id: str
    queue: str
    host: str = ""
    pid: int = 0
    concurrency: int = 0
    running: int = 0
    processed: int = 0
    failed: int = 0
    started_at: int = 0
    version: str = ""
    heartbeat_until: int = 0


def describe(queue: str, concurrency: int) -> str:
    """The fixed part of a worker's description, as JSON (the native core adds the running
    jobs and the counts to each heartbeat)."""
    return orjson.dumps(
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queue": queue,
            "concurrency": concurrency,
            "started_at": int(time.time() * 1000),
            "version": VERSION,
        }
    ).decode()


_FIELDS = ("host", "pid", "concurrency", "running", "processed", "failed", "started_at")


def _info(worker_id: str, queue: str, deadline: int, text: str) -> WorkerInfo:
    try:
        described: Any = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        described = {}
    if not isinstance(described, dict):
        described = {}
    fields: dict[str, Any] = {
        k: described[k]
        for k in _FIELDS
        if isinstance(described.get(k), str if k == "host" else int)
    }
    version = described.get("version")
    return WorkerInfo(
        id=worker_id,
        queue=queue,
        version=version if isinstance(version, str) else "",
        heartbeat_until=deadline,
        **fields,
    )


async def read_workers(native: NativeQueue, name: str) -> list[WorkerInfo]:
    """The live workers of queue ``name`` (``native``'s), oldest first."""
    _, rows = await NativeRegistry(native).workers()
    workers = [_info(worker_id, name, deadline, text) for worker_id, deadline, text in rows]
    return sorted(workers, key=lambda w: (w.started_at, w.id))
