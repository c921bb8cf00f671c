"""Cron and interval scheduling (the seed's scheduling example): a daily report at 2 AM
and a 30-second heartbeat with up to 2 seconds of jitter.

    python examples/scheduling.py           # the real schedules; runs until Ctrl-C
    python examples/scheduling.py --demo    # a heartbeat every second, for a few seconds

Any number of processes may run this at once: each tick still runs exactly once.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone
from typing import Any

from _server import run_example

from jobqueue import Job, JobQueue, QueueEvent


def stamp(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


async def main(redis_url: str) -> None:
    demo = "--demo" in sys.argv
    queue = JobQueue("scheduling-demo", redis=redis_url)

    @queue.processor("daily-report")
    async def daily_report(job: Job[dict[str, Any]]) -> str:
        return f"{job.data['type']} report built"

    @queue.processor("heartbeat")
    async def heartbeat(job: Job[dict[str, Any]]) -> None:
        print(f"  heartbeat from {job.data['service']} (job {job.id}, attempt {job.attempts_made})")

    queue.on(QueueEvent.JOB_ADDED, lambda job: print(f"  tick at {stamp(job.scheduled_for)}"))

    async with queue:
        # Run daily at 2 AM (UTC; pass tz="Europe/Berlin" or similar for local time).
        await queue.schedule_job("daily-report", {"type": "full"}, "0 2 * * *")
        # Run every 30 seconds with up to 2 seconds of jitter (1 s and 200 ms in the demo).
        interval, jitter = (1000, 200) if demo else (30_000, 2000)
        await queue.schedule_every(
            "heartbeat", {"service": "api"}, interval, jitter=jitter, schedule_id="heartbeat"
        )
        for info in await queue.list_schedules():
            pattern = info.cron or f"every {info.every} ms (+0..{info.jitter} ms)"
            print(f"schedule {info.id}: {info.name} {pattern}, next run {stamp(info.next_run_at)}")

        await queue.start_worker()
        if demo:
            await asyncio.sleep(4.5)
            await queue.clear()  # leave nothing behind in a shared Redis
        else:
            await queue.run_worker()


if __name__ == "__main__":
    run_example(main)
