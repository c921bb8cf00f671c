"""The seed's Quick Start, in Python: register a processor, add jobs, listen to events,
and look at the queue.

Run it with ``make demo``: it starts a throwaway redis-server on a free port (unless
``REDIS_URL`` points at one) and needs nothing else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _server import run_example

from jobqueue import Job, JobQueue, JobStatus, QueueEvent, RedisConfig


async def quick_start(redis_url: str) -> None:
    queue = JobQueue("my-queue", redis=RedisConfig(url=redis_url))

    # Register a processor.
    @queue.processor("send-email")
    async def send_email(job: Job[dict[str, Any]]) -> dict[str, bool]:
        print(f"  processing job {job.id}: sending email to {job.data.get('email')}")
        await job.update_progress(100)
        return {"success": True}

    # Listen for events.
    queue.on(QueueEvent.JOB_ADDED, lambda job: print(f"  added job {job.id} ({job.status})"))
    queue.on(QueueEvent.JOB_COMPLETED, lambda job: print(f"  job {job.id} completed!"))

    async with queue:
        await queue.start_worker()

        # Add a job.
        first = await queue.add_job("send-email", {"email": "user@example.com", "subject": "Hello"})
        # With options: retries, a delay, a priority and an idempotency key.
        second = await queue.add_job(
            "send-email",
            {"email": "other@example.com"},
            attempts=5,
            delay=timedelta(milliseconds=500),
            priority=10,
            idempotency_key="send-email-other@example.com",
            jitter=200,
        )
        again = await queue.add_job(
            "send-email",
            {"email": "other@example.com"},
            idempotency_key="send-email-other@example.com",
        )
        print(f"  the same idempotency key again returned job {again} (nothing added)")

        done = await queue.wait_for(first, timeout=10_000)
        print(
            f"\nJob {done.id}: {done.status}, returned {done.return_value}, "
            f"attempts {done.attempts}/{done.max_attempts}"
        )
        delayed = await queue.get_job_status(second)
        assert delayed is not None
        print(f"Job {delayed.id} is {delayed.status} for {delayed.delay} ms")
        await queue.wait_for(second, timeout=10_000)

        stats = await queue.get_stats()
        print(f"\nStats: {stats}")
        completed = await queue.get_jobs_by_status(JobStatus.COMPLETED)
        print("Completed jobs:", ", ".join(j.id for j in completed))
        health = await queue.health_check()
        print(
            f"Health: healthy={bool(health)} redis={health.redis_version} "
            f"rtt={health.redis_rtt_ms:.2f} ms workers={health.workers}"
        )


if __name__ == "__main__":
    run_example(quick_start)
