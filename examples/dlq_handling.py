"""Dead-letter queue operations (the seed's dlq-handling example): jobs that fail every
attempt land in the DLQ, a notification handler alerts, and once the cause is fixed the
DLQ is replayed."""

from __future__ import annotations

from typing import Any

from _server import run_example

from jobqueue import DLQConfig, Job, JobQueue, JobStatus, QueueEvent


async def main(redis_url: str) -> None:
    async def alert(job: Any) -> None:
        print(f"  ALERT: job {job.id} ({job.name}) moved to the DLQ")

    queue = JobQueue(
        "dlq-demo",
        redis=redis_url,
        dlq=DLQConfig(enabled=True, queue_name="dlq-demo-dlq", notification_handler=alert),
    )
    payment_service_up = False

    @queue.processor("charge")
    async def charge(job: Job[dict[str, Any]]) -> dict[str, Any]:
        if not payment_service_up:
            raise RuntimeError("payment service unavailable")
        return {"charged": job.data["amount"]}

    queue.on(QueueEvent.JOB_DLQ, lambda job, error: print(f"  job {job.id} dead-lettered: {error}"))

    async with queue:
        await queue.start_worker()
        ids = await queue.add_jobs(
            [("charge", {"amount": n}, {"attempts": 2, "backoff": 50}) for n in (10, 20, 30)]
        )
        for job_id in ids:
            await queue.wait_for(job_id, timeout=30_000)

        dead = await queue.get_dlq_jobs(100)
        print(f"\nDLQ holds {len(dead)} jobs:")
        for job in dead:
            print(f"  job {job.id}: {job.failed_reason} (data {job.data})")
        print("stats:", await queue.get_stats())

        print("\nThe payment service is back; replaying the DLQ")
        payment_service_up = True
        print(f"replayed {await queue.replay_dlq(50)} jobs")
        for job_id in ids:
            info = await queue.wait_for(job_id, timeout=30_000)
            assert info.status is JobStatus.COMPLETED
            print(f"  job {info.id}: {info.status}, returned {info.return_value}")
        print("stats:", await queue.get_stats())


if __name__ == "__main__":
    run_example(main)
