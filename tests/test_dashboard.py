"""The dashboard's HTTP side against a real uvicorn and redis-server: authentication, the
refusal of forged and cross-site actions, the security headers and every endpoint."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from jobqueue import JobQueue, JobStatus
from jobqueue.dashboard import BasicAuth, TokenAuth
from jobqueue.dashboard.security import CONTENT_SECURITY_POLICY
from jobqueue.testing import free_port, wait_until

from .dashboard_server import PASSWORD, running_dashboard
from .helpers import eventually, plant_active_job, port_of

AUTH = ("admin", PASSWORD)


@pytest.fixture
def dashboard(redis_url: str, queue_name: str) -> Iterator[str]:
    with running_dashboard(redis_url, [queue_name], auth=BasicAuth(*AUTH)) as url:
        yield url


@pytest.fixture
async def client(dashboard: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard, auth=AUTH, timeout=30) as c:
        yield c


async def csrf_token(client: httpx.AsyncClient, page_url: str = "/") -> str:
    page = (await client.get(page_url)).text
    marker = '<meta name="jobqueue-csrf" content="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


async def dead_letter(queue: JobQueue, count: int) -> list[str]:
    """``count`` jobs that failed their one attempt into the DLQ (a real worker runs them)."""

    def broken(job: Any) -> None:
        raise RuntimeError(f"broken {job.data}")

    queue.process("broken", broken)
    await queue.start_worker()
    ids = [await queue.add_job("broken", i, attempts=1) for i in range(count)]
    for job_id in ids:
        assert (await queue.wait_for(job_id, 30_000)).status is JobStatus.DLQ
    return ids


async def test_every_request_needs_the_password(dashboard: str) -> None:
    async with httpx.AsyncClient(base_url=dashboard, timeout=30) as anonymous:
        for path in ("/", "/api/queues", "/static/dashboard.js"):
            refused = await anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic ")
        assert (await anonymous.get("/", auth=("admin", "wrong"))).status_code == 401
        assert (await anonymous.get("/", auth=("root", PASSWORD))).status_code == 401
        assert (await anonymous.post("/api/queues/x/pause")).status_code == 401
        assert (await anonymous.get("/", auth=AUTH)).status_code == 200


async def test_page_and_assets_are_served_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    # No inline script or style: the policy would block them.
    assert page.text.count("<script") == 1 and '<script src="/static/dashboard.js?v=' in page.text
    assert "<style" not in page.text and " style=" not in page.text
    script = await client.get("/static/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "textContent" in script.text and "innerHTML" not in script.text
    styles = await client.get("/static/dashboard.css")
    assert styles.headers["content-type"].startswith("text/css")
    assert (await client.get("/static/../app.py")).status_code == 404
    assert (await client.get("/static/nothing.js")).status_code == 404
    unauthorized = await client.get("/", auth=("admin", "wrong"))
    assert unauthorized.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_stats_job_lists_and_a_job(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    first = await queue.add_job("email", {"to": "a@example.com"})
    second = await queue.add_job("email", {"to": "b@example.com"})
    later = await queue.add_job("report", None, delay=3_600_000)

    [overview] = (await client.get("/api/queues")).json()
    assert overview["name"] == queue_name
    assert overview["paused"] is False
    assert overview["stats"]["waiting"] == 2 and overview["stats"]["delayed"] == 1

    waiting = (await client.get(f"/api/queues/{queue_name}/jobs")).json()["jobs"]
    assert [j["id"] for j in waiting] == [first, second]
    assert waiting[0]["name"] == "email" and "data" not in waiting[0]
    delayed = (await client.get(f"/api/queues/{queue_name}/jobs?status=delayed")).json()["jobs"]
    assert [j["id"] for j in delayed] == [later]
    one = (await client.get(f"/api/queues/{queue_name}/jobs?limit=1")).json()["jobs"]
    assert [j["id"] for j in one] == [first]

    job = (await client.get(f"/api/queues/{queue_name}/jobs/{first}")).json()
    assert job["data"] == {"to": "a@example.com"}
    assert job["status"] == "waiting" and job["attempts"] == 0

    detail = (await client.get(f"/api/queues/{queue_name}")).json()
    assert detail["stats"]["waiting"] == 2 and detail["schedules"] == []
    # Without a worker registry (JobQueue.get_workers) the page shows the health count.
    assert detail["workers"] is None or hasattr(JobQueue, "get_workers")
    health = (await client.get(f"/api/queues/{queue_name}/health")).json()
    assert health["redis_version"] and health["workers"] == 0


async def test_bad_requests_get_clear_errors(client: httpx.AsyncClient, queue_name: str) -> None:
    missing = await client.get(f"/api/queues/{queue_name}/jobs/no-such-job")
    assert missing.status_code == 404 and "no-such-job" in missing.json()["error"]
    other = await client.get("/api/queues/other-queue")
    assert other.status_code == 404 and "other-queue" in other.json()["error"]
    status = await client.get(f"/api/queues/{queue_name}/jobs?status=sleeping")
    assert status.status_code == 400 and "status" in status.json()["error"]
    for param in ("limit=many", "offset=1.5"):
        bad = await client.get(f"/api/queues/{queue_name}/jobs?{param}")
        assert bad.status_code == 400 and param.split("=")[0] in bad.json()["error"]
    token = await csrf_token(client)
    bulk = await client.post(
        f"/api/queues/{queue_name}/retry?status=waiting", headers={"X-CSRF-Token": token}
    )
    assert bulk.status_code == 400 and "failed or dlq" in bulk.json()["error"]
    assert (await client.get(f"/api/queues/{queue_name}/pause")).status_code == 405


async def test_job_pages_and_search_by_name_are_clamped(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    ids = await queue.add_jobs([("email" if i % 2 else "report", i) for i in range(7)])
    jobs = f"/api/queues/{queue_name}/jobs"

    async def page(query: str) -> tuple[list[str], int, int, bool]:
        body = (await client.get(f"{jobs}?{query}")).json()
        return [j["id"] for j in body["jobs"]], body["offset"], body["limit"], body["more"]

    assert await page("limit=3") == (ids[:3], 0, 3, True)
    assert await page("limit=3&offset=3") == (ids[3:6], 3, 3, True)
    assert await page("limit=3&offset=6") == (ids[6:], 6, 3, False)
    assert await page("limit=2&name=EMA") == ([ids[1], ids[3]], 0, 2, True)
    assert await page("limit=2&offset=2&name=email") == ([ids[5]], 2, 2, False)
    # Out-of-range numbers are brought into range, not refused.
    assert await page("limit=0") == (ids[:1], 0, 1, True)
    assert (await page("limit=100000"))[2] == 200
    assert (await page("offset=-5"))[1] == 0
    assert (await page("limit=200&offset=99999"))[1] == 800


async def test_completed_and_failed_per_minute_from_the_fleet_events(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    throughput = f"/api/queues/{queue_name}/throughput"
    first = (await client.get(throughput)).json()  # the dashboard follows the events now
    assert first["last_minute"] == {"completed": 0, "failed": 0}
    assert len(first["minutes"]) == 60 and first["since"] <= first["now"]

    worker = make_queue()
    worker.process("ok", lambda job: job.data)
    await dead_letter(worker, 1)  # starts the worker too
    for i in range(3):
        assert (await worker.wait_for(await worker.add_job("ok", i), 30_000)).return_value == i

    async def counted() -> Any:
        body = (await client.get(throughput)).json()
        return body if body["last_minute"] == {"completed": 3, "failed": 1} else None

    body = await eventually(counted)
    assert sum(m["completed"] for m in body["minutes"]) == 3
    assert sum(m["failed"] for m in body["minutes"]) == 1
    [overview] = (await client.get("/api/queues")).json()
    assert overview["last_minute"] == {"completed": 3, "failed": 1}


async def test_actions_need_the_pages_token_and_origin(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str, dashboard: str
) -> None:
    queue = make_queue()
    pause = f"/api/queues/{queue_name}/pause"
    no_token = await client.post(pause)
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    wrong_token = await client.post(pause, headers={"X-CSRF-Token": "guessed"})
    assert wrong_token.status_code == 403
    token = await csrf_token(client)
    cross_site = await client.post(
        pause, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403 and "origin" in cross_site.json()["error"]
    marked = await client.post(
        pause, headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}
    )
    assert marked.status_code == 403 and "cross-site" in marked.json()["error"]
    assert await queue.is_paused() is False

    same_site = await client.post(pause, headers={"X-CSRF-Token": token, "Origin": dashboard})
    assert same_site.status_code == 200 and same_site.json() == {"paused": True}
    assert await queue.is_paused() is True
    [overview] = (await client.get("/api/queues")).json()
    assert overview["paused"] is True
    resumed = await client.post(f"/api/queues/{queue_name}/resume", headers={"X-CSRF-Token": token})
    assert resumed.json() == {"paused": False}
    assert await queue.is_paused() is False


async def test_retry_remove_drain_replay_and_unschedule(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    worker = make_queue()
    dead = await dead_letter(worker, 3)
    await worker.close()
    queue = make_queue()
    base = f"/api/queues/{queue_name}"
    headers = {"X-CSRF-Token": await csrf_token(client)}

    dlq = (await client.get(f"{base}/jobs?status=dlq")).json()["jobs"]
    assert {j["id"] for j in dlq} == set(dead)
    assert dlq[0]["failed_reason"].startswith("RuntimeError: broken")

    retried = await client.post(f"{base}/jobs/{dead[0]}/retry", headers=headers)
    assert retried.json() == {"retried": 1}
    info = await queue.get_job_status(dead[0])
    assert info is not None and info.status is JobStatus.WAITING and info.attempts == 0

    removed = await client.delete(f"{base}/jobs/{dead[1]}", headers=headers)
    assert removed.json() == {"removed": 1}
    assert await queue.get_job_status(dead[1]) is None
    again = await client.delete(f"{base}/jobs/{dead[1]}", headers=headers)
    assert again.status_code == 404

    replayed = await client.post(f"{base}/retry?status=dlq", headers=headers)
    assert replayed.json() == {"retried": 1}
    stats = await queue.get_stats()
    assert (stats.waiting, stats.dlq) == (2, 0)

    await queue.add_job("later", None, delay=3_600_000)
    drained = await client.post(f"{base}/drain", headers=headers)
    assert drained.json() == {"removed": 2}
    drained = await client.post(f"{base}/drain?include_delayed=true", headers=headers)
    assert drained.json() == {"removed": 1}

    schedule = await queue.schedule_every("tick", None, 60_000)
    [shown] = (await client.get(base)).json()["schedules"]
    assert shown["id"] == schedule and shown["every"] == 60_000
    gone = await client.delete(f"{base}/schedules/{schedule}", headers=headers)
    assert gone.json() == {"removed": 1}
    assert await queue.list_schedules() == []
    assert (await client.delete(f"{base}/schedules/{schedule}", headers=headers)).status_code == 404


async def test_an_active_job_cannot_be_removed(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str, redis_url: str
) -> None:
    queue = make_queue()
    job_id = await queue.add_job("long", None)
    plant_active_job(port_of(redis_url), queue_name, job_id, token="t", deadline=2**40)
    headers = {"X-CSRF-Token": await csrf_token(client)}
    refused = await client.delete(f"/api/queues/{queue_name}/jobs/{job_id}", headers=headers)
    assert refused.status_code == 409 and "active" in refused.json()["error"]
    info = await queue.get_job_status(job_id)
    assert info is not None and info.status is JobStatus.ACTIVE


async def test_allowed_origins_may_send_actions(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    admin = "https://admin.example.com"
    with running_dashboard(redis_url, [queue_name], auth=None, allowed_origins=[admin]) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            token = await csrf_token(client)
            pause = f"/api/queues/{queue_name}/pause"
            from_admin = {"X-CSRF-Token": token, "Origin": admin, "Sec-Fetch-Site": "same-site"}
            assert (await client.post(pause, headers=from_admin)).status_code == 200
            other = {**from_admin, "Origin": "https://other.example.com"}
            assert (await client.post(pause, headers=other)).status_code == 403
    assert await queue.is_paused()


async def test_token_auth_and_an_auth_hook_of_ones_own(redis_url: str, queue_name: str) -> None:
    token = "t0ken-" + "x" * 20
    with running_dashboard(redis_url, [queue_name], auth=TokenAuth(token)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            refused = await client.get("/api/queues")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer ")
            wrong = await client.get("/api/queues", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/api/queues", headers=bearer)).status_code == 200

    async def from_proxy(request: Request) -> bool:
        return request.headers.get("x-forwarded-user") == "ops"

    with running_dashboard(redis_url, [queue_name], auth=from_proxy) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            refused = await client.get("/")
            assert refused.status_code == 401 and "www-authenticate" not in refused.headers
            allowed = await client.get("/", headers={"X-Forwarded-User": "ops"})
            assert allowed.status_code == 200


async def test_read_only_dashboard_refuses_every_action(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    await queue.add_job("email", None)
    with running_dashboard(redis_url, [queue_name], auth=None, read_only=True) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            page = await client.get("/")
            assert '<meta name="jobqueue-read-only" content="true">' in page.text
            headers = {"X-CSRF-Token": await csrf_token(client)}
            for path in ("pause", "drain", "retry?status=dlq"):
                refused = await client.post(f"/api/queues/{queue_name}/{path}", headers=headers)
                assert refused.status_code == 403 and "read-only" in refused.json()["error"]
            assert (await client.get(f"/api/queues/{queue_name}/jobs")).status_code == 200
    assert await queue.is_paused() is False
    assert (await queue.get_stats()).waiting == 1


async def test_allowed_hosts_refuse_a_rebound_host_name(redis_url: str, queue_name: str) -> None:
    with running_dashboard(
        redis_url, [queue_name], auth=None, allowed_hosts=["127.0.0.1", "localhost"]
    ) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/")).status_code == 200
            rebound = await client.get("/", headers={"Host": "attacker.example:8080"})
            assert rebound.status_code == 400 and "attacker.example" in rebound.text


async def test_several_queues_in_one_dashboard(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    other_name = f"{queue_name}-2"
    await make_queue().add_job("a", None)
    async with JobQueue(other_name, redis=redis_url) as other:
        await other.add_job("b", None)
        await other.add_job("b", None)
        await other.pause()
        with running_dashboard(redis_url, [queue_name, other_name], auth=None) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                shown = {q["name"]: q for q in (await client.get("/api/queues")).json()}
        assert shown[queue_name]["stats"]["waiting"] == 1
        assert shown[other_name]["stats"]["paused"] == 2 and shown[other_name]["paused"]


async def test_mounted_under_a_path_in_another_app(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    await make_queue().add_job("a", None)
    with running_dashboard(redis_url, [queue_name], auth=None, mount_at="/admin/jobs") as url:
        async with httpx.AsyncClient(timeout=30) as client:
            page = await client.get(f"{url}/")
            assert '<meta name="jobqueue-base" content="/admin/jobs">' in page.text
            assert '<script src="/admin/jobs/static/dashboard.js?v=' in page.text
            assert (await client.get(f"{url}/static/dashboard.css")).status_code == 200
            [overview] = (await client.get(f"{url}/api/queues")).json()
            assert overview["stats"]["waiting"] == 1
            token = await csrf_token(client, f"{url}/")
            paused = await client.post(
                f"{url}/api/queues/{queue_name}/pause", headers={"X-CSRF-Token": token}
            )
            assert paused.json() == {"paused": True}


@dataclass(frozen=True)
class WorkerRow:
    id: str
    concurrency: int


class QueueWithWorkers(JobQueue):
    """A JobQueue with a worker registry, as the dashboard finds one by duck typing."""

    async def get_workers(self) -> list[WorkerRow]:
        return [WorkerRow("w-1", 8)]


async def test_workers_are_shown_where_the_queue_lists_them(
    redis_url: str, queue_name: str
) -> None:
    with running_dashboard(redis_url, [queue_name], auth=None, queue_class=QueueWithWorkers) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            detail = (await client.get(f"/api/queues/{queue_name}")).json()
    assert detail["workers"] == [{"id": "w-1", "concurrency": 8}]


def _dashboard_process(
    redis_url: str, args: list[str], env: dict[str, str]
) -> subprocess.Popen[str]:
    command = ["-m", "jobqueue.cli", "--redis", redis_url, "--log-level", "warning", "dashboard"]
    return subprocess.Popen(
        [sys.executable, *command, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_wants_a_password_beyond_loopback(redis_url: str, queue_name: str) -> None:
    env = {"JOBQUEUE_DASHBOARD_PASSWORD": "", "JOBQUEUE_DASHBOARD_TOKEN": ""}
    process = _dashboard_process(redis_url, [queue_name, "--host", "0.0.0.0"], env)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "JOBQUEUE_DASHBOARD_PASSWORD" in output and "--insecure" in output


async def test_cli_serves_the_dashboard_until_sigterm(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    await make_queue().add_job("email", None)
    port = free_port()
    process = _dashboard_process(
        redis_url,
        [queue_name, "--port", str(port)],
        {"JOBQUEUE_DASHBOARD_PASSWORD": PASSWORD},
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert process.poll() is None, process.communicate()[0]
            try:
                return httpx.get(url, timeout=5).status_code == 401
            except httpx.TransportError:  # not listening yet
                return False

        wait_until("jobqueue dashboard answers", answers, timeout=60)
        async with httpx.AsyncClient(base_url=url, auth=AUTH, timeout=30) as client:

            async def counted() -> Any:
                [overview] = (await client.get("/api/queues")).json()
                return overview["stats"]["waiting"] == 1

            await eventually(counted)
        process.terminate()
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_pages_are_rendered_on_the_server_with_everything_escaped(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    attack = "<script>alert(1)</script>"
    job_id = await queue.add_job(attack, {"html": attack}, delay=3_600_000)
    await queue.schedule_every(attack, None, 60_000)
    overview = await client.get("/")
    assert overview.status_code == 200 and f'data-queue="{queue_name}"' in overview.text
    page = await client.get(f"/queues/{queue_name}?status=delayed")
    assert page.status_code == 200
    job = await client.get(f"/queues/{queue_name}/jobs/{job_id}")
    assert job.status_code == 200 and "Promote" in job.text
    for html in (page.text, job.text):
        assert attack not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert html.count("<script") == 1  # the page's own script only
    found = await client.get(f"/queues/{queue_name}/jobs?id={job_id}", follow_redirects=True)
    assert found.status_code == 200 and str(found.url).endswith(f"/jobs/{job_id}")
    missing = await client.get(f"/queues/{queue_name}/jobs/no-such-job")
    assert missing.status_code == 404 and "No job no-such-job" in missing.text
    assert (await client.get("/queues/no-such-queue")).status_code == 404
    clamped = await client.get(f"/queues/{queue_name}?limit=99999&offset=-3&status=bogus")
    assert clamped.status_code == 200 and "waiting jobs" in clamped.text


async def test_promote_and_run_a_schedule_now_by_the_api(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    later = await queue.add_job("later", None, delay=3_600_000)
    schedule = await queue.schedule_job("digest", None, "0 8 * * *")
    base = f"/api/queues/{queue_name}"
    headers = {"X-CSRF-Token": await csrf_token(client)}
    promoted = await client.post(f"{base}/jobs/{later}/promote", headers=headers)
    assert promoted.json() == {"promoted": 1}
    again = await client.post(f"{base}/jobs/{later}/promote", headers=headers)
    assert again.status_code == 409 and "only delayed jobs" in again.json()["error"]
    run = await client.post(f"{base}/schedules/{schedule}/run", headers=headers)
    info = await queue.get_job_status(run.json()["enqueued"])
    assert info is not None and info.schedule_id == schedule
    unknown = await client.post(f"{base}/schedules/nope/run", headers=headers)
    assert unknown.status_code == 404
    removed = await client.post(f"{base}/schedules/{schedule}/remove", headers=headers)
    assert removed.json() == {"removed": 1}
    assert (await queue.get_stats()).waiting == 2


async def test_every_queue_of_the_redis_from_its_index(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    await make_queue().add_job("a", None)
    parts = make_queue(name=f"{queue_name}-parts", partitions=3)
    await parts.add_jobs([("b", i) for i in range(5)])
    with running_dashboard(redis_url, None, auth=None) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            shown = {q["name"]: q for q in (await client.get("/api/queues")).json()}
            assert sorted(shown) == [queue_name, f"{queue_name}-parts"]  # no "#1", "#2"
            assert shown[f"{queue_name}-parts"]["stats"]["waiting"] == 5
            assert shown[f"{queue_name}-parts"]["partitions"] == 3
            # A queue used later shows up without a restart (the index is read again).
            await make_queue(name=f"{queue_name}-new").add_job("c", None)

            async def listed() -> bool:
                names = [q["name"] for q in (await client.get("/api/queues")).json()]
                return f"{queue_name}-new" in names

            await eventually(listed)
            page = await client.get("/")
            assert "3 partitions" in page.text


def _sse_events(lines: list[str]) -> list[dict[str, str]]:
    events, current = [], {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = value.removeprefix(" ")
    return events


async def _read_events(
    client: httpx.AsyncClient,
    path: str,
    until: Callable[[list[dict[str, str]]], bool],
    last_event_id: str | None = None,
) -> list[dict[str, str]]:
    """The events of ``path`` until ``until`` holds for them (within 30 s)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    lines: list[str] = []

    async def read() -> list[dict[str, str]]:
        async with client.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                lines.append(line)
                if not line and until(_sse_events(lines)):
                    return _sse_events(lines)
        raise AssertionError(f"the stream ended: {lines}")

    return await asyncio.wait_for(read(), 30)


def _added(events: list[dict[str, str]]) -> list[str]:
    import orjson

    return [
        job_id
        for e in events
        if e.get("event") == "jobs"
        for kind, job_id in orjson.loads(e["data"])["jobs"]
        if kind == "job-added"
    ]


async def test_server_sent_events_resume_from_the_last_event_id(
    client: httpx.AsyncClient, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    path = f"/events?queue={queue_name}"
    first = await queue.add_job("a", None)  # before the page: not sent

    hello = await _read_events(client, path, lambda es: any(e.get("event") == "hello" for e in es))
    start_id = hello[-1]["id"]
    assert queue_name in start_id

    second = await queue.add_job("b", None)
    seen = await _read_events(client, path, lambda es: second in _added(es), start_id)
    assert _added(seen) == [second]  # resumed after the hello: the first is not sent
    resume_id = next(e["id"] for e in seen if e.get("event") == "jobs")

    # Written while no page was open: sent first on the next connection.
    third, fourth = await queue.add_job("c", None), await queue.add_job("d", None)
    resumed = await _read_events(client, path, lambda es: fourth in _added(es), resume_id)
    assert _added(resumed) == [third, fourth]
    assert first not in _added(resumed)
    # Without Last-Event-ID a page gets what comes from now on.
    fresh = await _read_events(client, path, lambda es: bool(es) and es[-1].get("event") == "hello")
    assert _added(fresh) == []


async def test_a_resume_from_too_far_back_reloads_and_starts_from_now(
    client: httpx.AsyncClient,
    make_queue: Callable[..., JobQueue],
    queue_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobqueue.dashboard import live

    monkeypatch.setattr(live, "MAX_RESUME_ENTRIES", 5)
    queue = make_queue()
    for i in range(8):
        await queue.add_job("a", i)  # one stream entry each
    path = f"/events?queue={queue_name}"
    old = f"{queue_name}=0-0"
    told = await _read_events(client, path, lambda es: bool(es) and "event" in es[-1], old)
    assert told[-1]["event"] == "reload"
    # Its id is the position of now: the next connection does not go back again.
    again = await _read_events(
        client, path, lambda es: bool(es) and "event" in es[-1], told[-1]["id"]
    )
    assert again[-1]["event"] == "hello" and _added(again) == []
