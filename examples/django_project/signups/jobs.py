"""The signups queue: one blocking facade per process for views, and the processors that
``manage.py runworker`` runs."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings

import jobqueue
import jobqueue.sync

QUEUE = "signups"


def send_welcome(job: jobqueue.Job[dict[str, Any]]) -> dict[str, Any]:
    # A plain `def` processor runs in the worker's thread pool: the ORM may be used here.
    return {"sent_to": job.data["email"]}


@functools.cache
def producer() -> jobqueue.sync.JobQueue:
    """The facade views add jobs through (thread-safe; made on first use, once per
    process, so that forking servers make it after the fork)."""
    return jobqueue.sync.JobQueue(QUEUE, redis=settings.JOBQUEUE_REDIS_URL)


def worker_queue() -> jobqueue.JobQueue:
    """The asyncio queue a worker process runs, with the processors."""
    queue = jobqueue.JobQueue(QUEUE, redis=settings.JOBQUEUE_REDIS_URL)
    queue.process("send-welcome", send_welcome)
    return queue
