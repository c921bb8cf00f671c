"""Retry strategies and backoff (the seed's retry-logic example): a flaky API call that
succeeds on its third attempt with exponential backoff, and a task that keeps failing
with a fixed backoff until it is dead-lettered."""

from __future__ import annotations

from typing import Any

from _server import run_example

from jobqueue import Backoff, Job, JobQueue, QueueEvent


async def main(redis_url: str) -> None:
    queue = JobQueue("retry-demo", redis=redis_url)

    @queue.processor("api-call")
    async def api_call(job: Job[dict[str, Any]]) -> dict[str, Any]:
        if job.attempts_made < 3:
            raise ConnectionError(f"upstream unavailable (attempt {job.attempts_made})")
        return {"status": 200, "attempt": job.attempts_made}

    @queue.processor("task")
    def task(job: Job[None]) -> None:
        raise ValueError("this task always fails")

    queue.on(
        QueueEvent.JOB_RETRYING,
        lambda job, error: print(
            f"  job {job.id} ({job.name}) attempt {job.attempts_made} failed: {error}; retrying"
        ),
    )
    queue.on(QueueEvent.JOB_FAILED, lambda job, error: print(f"  job {job.id} failed for good"))

    async with queue:
        await queue.start_worker()
        # Delays: 100 ms, 200 ms, 400 ms ... capped at 1 s (the seed uses seconds).
        api = await queue.add_job(
            "api-call",
            {"url": "https://example.com"},
            attempts=5,
            backoff=Backoff.exponential(100, max_delay=1000),
        )
        # Delays: 150 ms, 150 ms.
        doomed = await queue.add_job("task", None, attempts=3, backoff=Backoff.fixed(150))
        for job_id in (api, doomed):
            info = await queue.wait_for(job_id, timeout=30_000)
            print(
                f"job {info.id}: {info.status} after {info.attempts} attempts"
                f" -> {info.return_value or info.failed_reason}"
            )


if __name__ == "__main__":
    run_example(main)
