"""The HTML pages, rendered on the server: the overview of every queue, a queue's page
(counts, chart, jobs by status with paging and search, schedules, workers, Redis health)
and a job's page. Each is a call or a few of the public JobQueue API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import InvalidOptionError, JobQueueError
from ..models import QueueStats
from ..queue import JobQueue
from . import chart
from .routes import DEFAULT_LIMIT, MAX_LIMIT, HTTPError, clamped, jobs_page
from .state import Dashboard
from .templates import environment, segment
from .throughput import Snapshot

#: The statuses a page lists, in the order shown (pending is never stored).
STATUSES = ["waiting", "active", "delayed", "paused", "completed", "failed", "dlq"]


@dataclass(frozen=True)
class QueueRow:
    name: str
    partitions: int
    stats: QueueStats | None
    paused: bool
    throughput: Snapshot
    error: str | None = None


class Pages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.env: Environment = environment()

    def base(self, request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def render(
        self, request: Request, template: str, code: int = 200, **context: Any
    ) -> Response:
        d = self.dashboard
        base = self.base(request)
        current = context.get("queue")
        try:
            names = await d.queues.names()
        except JobQueueError:
            names = []
        events = f"{base}/events"
        if isinstance(current, JobQueue):
            events += f"?queue={segment(current.name)}"
        html = self.env.get_template(template).render(
            base=base,
            csrf_token=d.csrf_token,
            read_only=d.read_only,
            refresh_ms=d.refresh_ms,
            assets=d.assets,
            queue_names=names,
            current_queue=current.name if isinstance(current, JobQueue) else None,
            events_url=events,
            statuses=STATUSES,
            **context,
        )
        return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})

    async def missing(
        self, request: Request, message: str, code: int, back: tuple[str, str] | None = None
    ) -> Response:
        return await self.render(
            request,
            "missing.html",
            code,
            message=message,
            back_url=back[0] if back else "",
            back_label=back[1] if back else "",
        )

    async def queue_of(self, request: Request) -> JobQueue | None:
        return await self.dashboard.queues.get(request.path_params["queue"])

    async def overview(self, request: Request) -> Response:
        d = self.dashboard
        rows = []
        try:
            queues = await d.queues.all()
        except JobQueueError as exc:
            return await self.missing(request, f"Redis cannot be read: {exc}", 503)
        for queue in queues:
            try:
                await d.watch(queue)
                stats = await queue.get_stats()
                paused = await queue.is_paused()
            except JobQueueError as exc:
                snapshot = d.throughput.snapshot(queue.name)
                rows.append(QueueRow(queue.name, queue.partitions, None, False, snapshot, str(exc)))
                continue
            snapshot = d.throughput.snapshot(queue.name)
            rows.append(QueueRow(queue.name, queue.partitions, stats, paused, snapshot))
        return await self.render(request, "overview.html", rows=rows)

    async def queue_page(self, request: Request) -> Response:
        d = self.dashboard
        queue = await self.queue_of(request)
        name = request.path_params["queue"]
        base = self.base(request)
        if queue is None:
            return await self.missing(request, f"No queue {name} in this dashboard.", 404)
        params = request.query_params
        status = params.get("status", "waiting")
        if status not in STATUSES:
            status = "waiting"
        name_filter = params.get("name", "").strip()
        try:
            limit = clamped(params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            offset = clamped(params.get("offset"), "offset", 0, 0, 10**9)
            await d.watch(queue)
            stats = await queue.get_stats()
            paused = await queue.is_paused()
            page = await jobs_page(queue, status, offset, limit, name_filter)
            schedules = await queue.list_schedules()
            workers = await queue.get_workers()
            health = await d.health(queue)
        except (JobQueueError, HTTPError) as exc:
            back = (f"{base}/", "the overview")
            code = 400 if isinstance(exc, (InvalidOptionError, HTTPError)) else 503
            return await self.missing(request, f"{name}: {exc}", code, back)
        page_url = f"{base}/queues/{segment(queue.name)}"
        return await self.render(
            request,
            "queue.html",
            queue=queue,
            api=f"{base}/api/queues/{segment(queue.name)}",
            page_url=page_url,
            paused=paused,
            stats=dict(stats.__dict__),
            status=status,
            name_filter=name_filter,
            jobs=page.jobs,
            offset=page.offset,
            limit=page.limit,
            more=page.more,
            chart=chart.build(d.throughput.snapshot(queue.name)),
            schedules=schedules,
            workers=workers,
            health=health,
        )

    async def find_job(self, request: Request) -> Response:
        """The id search: to the job's page."""
        base = self.base(request)
        name = request.path_params["queue"]
        job_id = request.query_params.get("id", "").strip()
        url = f"{base}/queues/{segment(name)}"
        if not job_id:
            return RedirectResponse(url, status_code=303)
        return RedirectResponse(f"{url}/jobs/{segment(job_id)}", status_code=303)

    async def job_page(self, request: Request) -> Response:
        queue = await self.queue_of(request)
        name, job_id = request.path_params["queue"], request.path_params["job_id"]
        base = self.base(request)
        if queue is None:
            return await self.missing(request, f"No queue {name} in this dashboard.", 404)
        queue_url = f"{base}/queues/{segment(queue.name)}"
        back = (queue_url, queue.name)
        try:
            job = await queue.get_job_status(job_id)
        except JobQueueError as exc:
            code = 400 if isinstance(exc, InvalidOptionError) else 503
            return await self.missing(request, f"Job {job_id}: {exc}", code, back)
        if job is None:
            return await self.missing(request, f"No job {job_id} in {queue.name}.", 404, back)
        return await self.render(
            request,
            "job.html",
            queue=queue,
            job=job,
            queue_url=queue_url,
            api=f"{base}/api/queues/{segment(queue.name)}",
        )

    def routes(self) -> list[Route]:
        return [
            Route("/", self.overview, methods=["GET"]),
            Route("/queues/{queue}", self.queue_page, methods=["GET"]),
            Route("/queues/{queue}/jobs", self.find_job, methods=["GET"]),
            Route("/queues/{queue}/jobs/{job_id}", self.job_page, methods=["GET"]),
        ]
