"""The seed's Quick Start, in Python: add jobs, then look at them and at the queue.

Run it with ``make demo``: it starts a throwaway redis-server on a free port (unless
``REDIS_URL`` points at one) and needs nothing else.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from jobqueue import JobInfo, JobQueue, JobStatus, QueueEvent, RedisConfig
from jobqueue.testing import RedisServer


async def quick_start(redis_url: str) -> None:
    queue = JobQueue("my-queue", redis=RedisConfig(url=redis_url))

    def on_added(job: JobInfo) -> None:
        print(f"  event {QueueEvent.JOB_ADDED}: job {job.id} ({job.name}) is {job.status}")

    queue.on(QueueEvent.JOB_ADDED, on_added)

    async with queue:
        print("Adding jobs")
        email_id = await queue.add_job(
            "send-email", {"email": "user@example.com", "subject": "Hello"}
        )
        await queue.add_job(
            "send-email",
            {"to": "user@example.com"},
            attempts=5,
            delay=timedelta(seconds=1),
            priority=10,
            idempotency_key="send-email-user@example.com",
            jitter=500,
        )
        # The same idempotency key again: the first job's id comes back, nothing is added.
        again = await queue.add_job(
            "send-email", {"to": "user@example.com"}, idempotency_key="send-email-user@example.com"
        )
        print(f"  idempotent repeat returned job {again}")
        ids = await queue.add_jobs(
            [("resize", {"image": f"img-{i}.png"}, {"priority": i % 3}) for i in range(5)]
        )
        print(f"  bulk-added jobs {ids[0]}..{ids[-1]} in one round trip")

        status = await queue.get_job_status(email_id)
        assert status is not None
        print(
            f"\nJob {status.id}: name={status.name} status={status.status} "
            f"attempts={status.attempts}/{status.max_attempts} data={status.data}"
        )

        waiting = await queue.get_jobs_by_status(JobStatus.WAITING)
        print(
            "Waiting, in the order a worker will take them:",
            ", ".join(f"{j.id}(p{j.priority})" for j in waiting),
        )
        delayed = await queue.get_jobs_by_status(JobStatus.DELAYED)
        print("Delayed:", ", ".join(f"{j.id}(+{j.delay} ms)" for j in delayed))

        print("\nStats:", await queue.get_stats())
        await queue.pause()
        print("Paused:", await queue.get_stats())
        await queue.resume()
        health = await queue.health_check()
        print(
            f"Health: healthy={bool(health)} redis={health.redis_version} "
            f"rtt={health.redis_rtt_ms:.2f} ms"
        )
        print(f"\nCleared {await queue.clear()} jobs")


def main() -> None:
    url = os.environ.get("REDIS_URL")
    if url:
        asyncio.run(quick_start(url))
        return
    with RedisServer() as server:
        print(f"Started a throwaway redis-server at {server.url}\n")
        asyncio.run(quick_start(server.url))


if __name__ == "__main__":
    main()
