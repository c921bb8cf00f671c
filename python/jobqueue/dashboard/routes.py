"""The dashboard's JSON API and its actions (the buttons of the pages send these), and the
events endpoint: each is a call or two of the public JobQueue API."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidOptionError, InvalidStateError, JobNotFoundError, JobQueueError
from ..models import JobInfo, JobStatus
from ..queue import JobQueue
from .live import MAX_STREAM_S, event_stream
from .state import Dashboard

#: Jobs per page unless the page asks otherwise, and the most per page.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: How deep into a status the pages (and a search by name) reach.
MAX_SCAN = 1000
#: A failure reason in a job list is cut to this many characters (the job's page has all).
REASON_IN_LIST = 300

Endpoint = Callable[[Request], Awaitable[Response]]


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_response(value: Any, status: int = 200) -> Response:
    body = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def clamped(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPError(400, f"{name} must be a number, got {text!r}") from None
    return max(low, min(value, high))


@dataclass(frozen=True)
class JobsPage:
    jobs: list[JobInfo]
    offset: int
    limit: int
    more: bool


async def jobs_page(queue: JobQueue, status: str, offset: int, limit: int, name: str) -> JobsPage:
    """A page of the jobs of ``status`` (``offset`` clamped so the page ends within the
    first ``MAX_SCAN``), those whose name contains ``name`` (case-insensitive) when given,
    searched among the first ``MAX_SCAN``."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, min(offset, MAX_SCAN - limit))
    wanted = name.strip().lower()
    jobs = await queue.get_jobs_by_status(status, MAX_SCAN if wanted else offset + limit + 1)
    if wanted:
        jobs = [j for j in jobs if wanted in j.name.lower()]
    more = len(jobs) > offset + limit and offset + limit < MAX_SCAN
    return JobsPage(jobs[offset : offset + limit], offset, limit, more)


def _status_of(exc: JobQueueError) -> int:
    if isinstance(exc, JobNotFoundError):
        return 404
    if isinstance(exc, InvalidStateError):
        return 409
    if isinstance(exc, InvalidOptionError):
        return 400
    return 503  # Redis unreachable or failing: the dashboard itself is fine


def handled(endpoint: Endpoint) -> Endpoint:
    """Errors of the queue and of the request as JSON ``{"error": ...}`` responses."""

    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except HTTPError as exc:
            return json_response({"error": str(exc)}, exc.status)
        except JobQueueError as exc:
            return json_response({"error": str(exc)}, _status_of(exc))

    return run


def job_summary(job: JobInfo) -> dict[str, Any]:
    """A job as a list shows it: no data, return value, stack trace or logs."""
    reason = job.failed_reason
    if reason is not None and len(reason) > REASON_IN_LIST:
        reason = reason[:REASON_IN_LIST] + "…"
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "progress": job.progress,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": job.created_at,
        "processed_at": job.processed_at,
        "finished_at": job.finished_at,
        "failed_reason": reason,
        "priority": job.priority,
        "delay": job.delay,
        "group": job.group,
    }


def _row(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


class Api:
    """The JSON API (for scripts, and the actions the pages' buttons send)."""

    def __init__(self, dashboard: Dashboard, max_stream_s: float = MAX_STREAM_S) -> None:
        self.dashboard = dashboard
        self.max_stream_s = max_stream_s

    async def queue(self, request: Request) -> JobQueue:
        name = request.path_params["queue"]
        queue = await self.dashboard.queues.get(name)
        if queue is None:
            raise HTTPError(404, f"no queue {name!r} in this dashboard")
        return queue

    async def _overview(self, queue: JobQueue) -> dict[str, Any]:
        await self.dashboard.watch(queue)
        snapshot = self.dashboard.throughput.snapshot(queue.name)
        return {
            "name": queue.name,
            "partitions": queue.partitions,
            "stats": await queue.get_stats(),
            "paused": await queue.is_paused(),
            "last_minute": snapshot.as_json()["last_minute"],
        }

    async def list_queues(self, request: Request) -> Response:
        queues = await self.dashboard.queues.all()
        return json_response([await self._overview(q) for q in queues])

    async def queue_detail(self, request: Request) -> Response:
        queue = await self.queue(request)
        return json_response(
            {
                **await self._overview(queue),
                "schedules": await queue.list_schedules(),
                "workers": [_row(w) for w in await queue.get_workers()],
            }
        )

    async def throughput(self, request: Request) -> Response:
        queue = await self.queue(request)
        await self.dashboard.watch(queue)
        return json_response(self.dashboard.throughput.snapshot(queue.name).as_json())

    async def health(self, request: Request) -> Response:
        return json_response(await (await self.queue(request)).health_check())

    async def jobs(self, request: Request) -> Response:
        """A page of the jobs of ``status`` (``offset``, ``limit``; clamped), those whose
        name contains ``name`` when given (searched among the first ``MAX_SCAN``)."""
        queue = await self.queue(request)
        params = request.query_params
        status = params.get("status", JobStatus.WAITING.value)
        limit = clamped(params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = clamped(params.get("offset"), "offset", 0, 0, MAX_SCAN - limit)
        page = await jobs_page(queue, status, offset, limit, params.get("name", ""))
        return json_response(
            {
                "jobs": [job_summary(j) for j in page.jobs],
                "offset": page.offset,
                "limit": page.limit,
                "more": page.more,
            }
        )

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        found = await (await self.queue(request)).get_job_status(job_id)
        if found is None:
            raise HTTPError(404, f"no job {job_id!r}")
        return json_response(found)

    async def events(self, request: Request) -> Response:
        """Server-sent events of one queue (``?queue=``) or of every queue shown."""
        name = request.query_params.get("queue")
        if name is None:
            queues = await self.dashboard.queues.all()
        else:
            queue = await self.dashboard.queues.get(name)
            if queue is None:
                raise HTTPError(404, f"no queue {name!r} in this dashboard")
            queues = [queue]
        for followed in queues:  # counted from its last hour on, as a page does
            await self.dashboard.watch(followed)
        return await event_stream(request, self.dashboard.hub, queues, self.max_stream_s)

    # -- actions (POST; DELETE for the two removals, as before) ---------------------------

    async def retry_job(self, request: Request) -> Response:
        await (await self.queue(request)).retry_job(request.path_params["job_id"])
        return json_response({"retried": 1})

    async def promote_job(self, request: Request) -> Response:
        await (await self.queue(request)).promote_job(request.path_params["job_id"])
        return json_response({"promoted": 1})

    async def remove_job(self, request: Request) -> Response:
        await (await self.queue(request)).remove_job(request.path_params["job_id"])
        return json_response({"removed": 1})

    async def pause(self, request: Request) -> Response:
        await (await self.queue(request)).pause()
        return json_response({"paused": True})

    async def resume(self, request: Request) -> Response:
        await (await self.queue(request)).resume()
        return json_response({"paused": False})

    async def drain(self, request: Request) -> Response:
        include_delayed = request.query_params.get("include_delayed") == "true"
        removed = await (await self.queue(request)).drain(include_delayed=include_delayed)
        return json_response({"removed": removed})

    async def bulk_retry(self, request: Request) -> Response:
        """Retry every failed job, or replay the DLQ (``?status=dlq``)."""
        status = request.query_params.get("status", JobStatus.FAILED.value)
        return json_response({"retried": await (await self.queue(request)).bulk_retry(status)})

    async def run_schedule(self, request: Request) -> Response:
        schedule_id = request.path_params["schedule_id"]
        job_id = await (await self.queue(request)).run_schedule_now(schedule_id)
        return json_response({"enqueued": job_id})

    async def unschedule(self, request: Request) -> Response:
        schedule_id = request.path_params["schedule_id"]
        if not await (await self.queue(request)).unschedule(schedule_id):
            raise HTTPError(404, f"no schedule {schedule_id!r}")
        return json_response({"removed": 1})

    def routes(self) -> list[Route]:
        q = "/api/queues/{queue}"
        job = q + "/jobs/{job_id}"
        schedule = q + "/schedules/{schedule_id}"
        table: list[tuple[str, Endpoint, str]] = [
            ("/events", self.events, "GET"),
            ("/api/queues", self.list_queues, "GET"),
            (q, self.queue_detail, "GET"),
            (f"{q}/health", self.health, "GET"),
            (f"{q}/throughput", self.throughput, "GET"),
            (f"{q}/jobs", self.jobs, "GET"),
            (job, self.job, "GET"),
            (job, self.remove_job, "DELETE"),
            (f"{job}/remove", self.remove_job, "POST"),
            (f"{job}/retry", self.retry_job, "POST"),
            (f"{job}/promote", self.promote_job, "POST"),
            (f"{q}/pause", self.pause, "POST"),
            (f"{q}/resume", self.resume, "POST"),
            (f"{q}/drain", self.drain, "POST"),
            (f"{q}/retry", self.bulk_retry, "POST"),
            (schedule, self.unschedule, "DELETE"),
            (f"{schedule}/remove", self.unschedule, "POST"),
            (f"{schedule}/run", self.run_schedule, "POST"),
        ]
        return [Route(path, handled(fn), methods=[method]) for path, fn, method in table]
