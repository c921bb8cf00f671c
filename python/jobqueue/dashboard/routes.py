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
from .throughput import Throughput

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


def _clamped(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPError(400, f"{name} must be a number, got {text!r}") from None
    return max(low, min(value, high))


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
        self.throughputs = {name: Throughput(q) for name, q in queues.items()}

    def queue(self, request: Request) -> JobQueue:
        name = request.path_params["queue"]
        queue = self.queues.get(name)
        if queue is None:
            raise HTTPError(404, f"no queue {name!r} in this dashboard")
        return queue

    async def _overview(self, queue: JobQueue) -> dict[str, Any]:
        throughput = self.throughputs[queue.name]
        await throughput.start()
        return {
            "name": queue.name,
            "stats": await queue.get_stats(),
            "paused": await queue.is_paused(),
            "last_minute": throughput.snapshot()["last_minute"],
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

    async def throughput(self, request: Request) -> Response:
        throughput = self.throughputs[self.queue(request).name]
        await throughput.start()
        return json_response(throughput.snapshot())

    async def health(self, request: Request) -> Response:
        return json_response(await self.queue(request).health_check())

    async def jobs(self, request: Request) -> Response:
        """A page of the jobs of ``status`` (``offset``, ``limit``; clamped), those whose
        name contains ``name`` when given (searched among the first ``MAX_SCAN``)."""
        queue = self.queue(request)
        params = request.query_params
        status = params.get("status", JobStatus.WAITING.value)
        limit = _clamped(params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _clamped(params.get("offset"), "offset", 0, 0, MAX_SCAN - limit)
        name = params.get("name", "").strip().lower()
        jobs = await queue.get_jobs_by_status(status, MAX_SCAN if name else offset + limit + 1)
        if name:
            jobs = [j for j in jobs if name in j.name.lower()]
        return json_response(
            {
                "jobs": [job_summary(j) for j in jobs[offset : offset + limit]],
                "offset": offset,
                "limit": limit,
                "more": len(jobs) > offset + limit and offset + limit < MAX_SCAN,
            }
        )

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
            (f"{q}/throughput", self.throughput, "GET"),
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
