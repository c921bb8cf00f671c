"""The dashboard's JSON API: each endpoint is one call of the public JobQueue API."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidOptionError, InvalidStateError, JobNotFoundError, JobQueueError
from ..models import JobInfo, JobStatus
from ..queue import JobQueue

#: Jobs listed per status unless the page asks for more; the most it may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
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


async def workers_of(queue: JobQueue) -> list[Any] | None:
    """The queue's live workers when this jobqueue has a worker registry
    (``JobQueue.get_workers``), else None: the page then shows the count of
    ``health_check`` only."""
    get_workers = getattr(queue, "get_workers", None)
    if not callable(get_workers):
        return None
    found = get_workers()
    if inspect.isawaitable(found):
        found = await found
    return [_row(w) for w in found]


class Api:
    def __init__(self, queues: Mapping[str, JobQueue]) -> None:
        self.queues = queues

    def queue(self, request: Request) -> JobQueue:
        name = request.path_params["queue"]
        queue = self.queues.get(name)
        if queue is None:
            raise HTTPError(404, f"no queue {name!r} in this dashboard")
        return queue

    async def _overview(self, queue: JobQueue) -> dict[str, Any]:
        return {
            "name": queue.name,
            "stats": await queue.get_stats(),
            "paused": await queue.is_paused(),
        }

    async def list_queues(self, request: Request) -> Response:
        return json_response([await self._overview(q) for q in self.queues.values()])

    async def queue_detail(self, request: Request) -> Response:
        queue = self.queue(request)
        return json_response(
            {
                **await self._overview(queue),
                "schedules": await queue.list_schedules(),
                "workers": await workers_of(queue),
            }
        )

    async def health(self, request: Request) -> Response:
        return json_response(await self.queue(request).health_check())

    async def jobs(self, request: Request) -> Response:
        queue = self.queue(request)
        status = request.query_params.get("status", JobStatus.WAITING.value)
        limit_text = request.query_params.get("limit", str(DEFAULT_LIMIT))
        try:
            limit = int(limit_text)
        except ValueError:
            raise HTTPError(400, f"limit must be a number, got {limit_text!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise HTTPError(400, f"limit must be 1..{MAX_LIMIT}, got {limit}")
        jobs = await queue.get_jobs_by_status(status, limit)
        return json_response([job_summary(j) for j in jobs])

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        found = await self.queue(request).get_job_status(job_id)
        if found is None:
            raise HTTPError(404, f"no job {job_id!r}")
        return json_response(found)

    async def retry_job(self, request: Request) -> Response:
        await self.queue(request).retry_job(request.path_params["job_id"])
        return json_response({"retried": 1})

    async def remove_job(self, request: Request) -> Response:
        await self.queue(request).remove_job(request.path_params["job_id"])
        return json_response({"removed": 1})

    async def pause(self, request: Request) -> Response:
        await self.queue(request).pause()
        return json_response({"paused": True})

    async def resume(self, request: Request) -> Response:
        await self.queue(request).resume()
        return json_response({"paused": False})

    async def drain(self, request: Request) -> Response:
        include_delayed = request.query_params.get("include_delayed") == "true"
        removed = await self.queue(request).drain(include_delayed=include_delayed)
        return json_response({"removed": removed})

    async def bulk_retry(self, request: Request) -> Response:
        """Retry every failed job, or replay the DLQ (``?status=dlq``)."""
        status = request.query_params.get("status", JobStatus.FAILED.value)
        return json_response({"retried": await self.queue(request).bulk_retry(status)})

    async def unschedule(self, request: Request) -> Response:
        schedule_id = request.path_params["schedule_id"]
        if not await self.queue(request).unschedule(schedule_id):
            raise HTTPError(404, f"no schedule {schedule_id!r}")
        return json_response({"removed": 1})

    def routes(self) -> list[Route]:
        q = "/api/queues/{queue}"
        table: list[tuple[str, Endpoint, str]] = [
            ("/api/queues", self.list_queues, "GET"),
            (q, self.queue_detail, "GET"),
            (f"{q}/health", self.health, "GET"),
            (f"{q}/jobs", self.jobs, "GET"),
            (q + "/jobs/{job_id}", self.job, "GET"),
            (q + "/jobs/{job_id}", self.remove_job, "DELETE"),
            (q + "/jobs/{job_id}/retry", self.retry_job, "POST"),
            (f"{q}/pause", self.pause, "POST"),
            (f"{q}/resume", self.resume, "POST"),
            (f"{q}/drain", self.drain, "POST"),
            (f"{q}/retry", self.bulk_retry, "POST"),
            (q + "/schedules/{schedule_id}", self.unschedule, "DELETE"),
        ]
        return [Route(path, handled(fn), methods=[method]) for path, fn, method in table]
