"""The dashboard's pages in headless Chromium (Debian's, driven by Playwright), against a
real uvicorn and redis-server: what they show, their buttons, the live updates, and that
job data stays text.

Skipped when Chromium is not installed (`make test` installs it)."""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobqueue import DLQConfig, JobQueue, JobStatus, WorkerConfig
from jobqueue.dashboard import BasicAuth
from jobqueue.testing import HOST, free_port, wait_until

from .dashboard_server import PASSWORD, running_dashboard
from .test_dashboard import dead_letter

playwright = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

#: Generous bounds for what the page shows; each check polls, none sleeps.
EXPECT_MS = 20_000
playwright.expect.set_options(timeout=EXPECT_MS)
#: The pages poll this seldom (the slow poll is five times more): what they show within
#: EXPECT_MS came by server-sent events, or after an action of the page itself.
NO_POLLING_MS = 600_000


def expect(locator: Any) -> Any:
    return playwright.expect(locator)


@asynccontextmanager
async def browser_tab(
    url: str | None,
    credentials: bool = True,
    init_script: str | None = None,
    expected_error: str | None = None,
) -> AsyncIterator[Any]:
    """A tab on ``url`` (None: blank); the test fails on any script error or
    Content-Security-Policy violation the page logs, but ``expected_error``. Dialogs (the
    confirmations) are accepted."""
    problems: list[str] = []
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = await browser.new_context(
            http_credentials={"username": "admin", "password": PASSWORD} if credentials else None
        )
        if init_script is not None:
            await context.add_init_script(init_script)
        tab = await context.new_page()
        tab.set_default_timeout(EXPECT_MS)
        tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))

        def console(message: Any) -> None:
            # A page the server answers 4xx (a missing job, a refused request) is logged
            # as an error by the browser: no problem of the page.
            text = message.text
            expected = "the server responded with a status of 4", expected_error or "\0"
            if message.type == "error" and not any(e in text for e in expected):
                problems.append(f"console: {text} ({message.location})")

        tab.on("console", console)
        tab.on("dialog", lambda dialog: dialog.accept())
        if url is not None:
            await tab.goto(url)
        try:
            yield tab
        finally:
            await browser.close()
    assert problems == []


@pytest.fixture
def dashboard(redis_url: str, queue_name: str) -> Iterator[str]:
    with running_dashboard(
        redis_url, [queue_name], auth=BasicAuth("admin", PASSWORD), refresh_ms=NO_POLLING_MS
    ) as url:
        yield url


@pytest.fixture
async def page(dashboard: str, queue_name: str) -> AsyncIterator[Any]:
    """The queue's page, logged in, following the live events."""
    async with browser_tab(f"{dashboard}/queues/{queue_name}") as tab:
        await expect(tab.locator("#connection")).to_contain_text("live")
        yield tab


async def test_the_overview_shows_the_counts_of_a_constructed_queue(
    dashboard: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    worker = make_queue()
    worker.process("ok", lambda job: job.data)
    await dead_letter(worker, 1)  # one job in the DLQ (and the worker started)
    for i in range(2):
        await worker.wait_for(await worker.add_job("ok", i), 30_000)
    await worker.close()
    queue = make_queue()
    await queue.add_jobs([("email", i) for i in range(3)])
    await queue.add_job("later", None, delay=3_600_000)

    async with browser_tab(dashboard) as tab:
        row = tab.locator(f'#queues-table tr[data-queue="{queue_name}"]')
        expected = {"waiting": "3", "delayed": "1", "completed": "2", "dlq": "1", "active": "0"}
        for status, count in expected.items():
            await expect(row.locator(f'[data-count="{status}"]')).to_have_text(count)
        await expect(row.locator('[data-rate="completed"]')).to_have_text("2")
        await expect(row.locator('[data-rate="failed"]')).to_have_text("1")
        await expect(row.locator(".badge")).to_have_text("running")
        # Live: a job added now shows without a reload.
        await queue.add_job("email", 3)
        await expect(row.locator('[data-count="waiting"]')).to_have_text("4")
        await row.get_by_role("link", name=queue_name).click()
        await expect(tab.locator("#queue-name")).to_have_text(queue_name)


async def test_live_update_when_a_job_completes(
    page: Any, make_queue: Callable[..., JobQueue]
) -> None:
    """The page polls every 10 minutes only here: the updates come by server-sent events."""
    queue = make_queue()
    release = asyncio.Event()

    async def hold(job: Any) -> str:
        await release.wait()
        return "done"

    queue.process("hold", hold)
    await queue.start_worker()
    job_id = await queue.add_job("hold", None)
    await expect(page.locator('[data-status="active"] .number')).to_have_text("1")
    await page.locator('[data-status="active"]').click()
    await expect(page.locator(f'#jobs tr[data-job="{job_id}"]')).to_contain_text("hold")
    await expect(page.locator("#connection")).to_contain_text("live")
    release.set()
    await expect(page.locator('[data-status="completed"] .number')).to_have_text("1")
    await expect(page.locator('[data-status="active"] .number')).to_have_text("0")
    await expect(page.locator('[data-rate="completed"]')).to_have_text("1")
    await expect(page.locator('[data-total="completed"]')).to_have_text("1")
    bar = page.locator("#chart g title", has_text="1 completed, 0 failed")
    await expect(bar).to_have_count(1)
    await expect(page.locator("#jobs-empty")).to_be_visible()


async def test_polling_when_the_browser_has_no_server_sent_events(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    with running_dashboard(redis_url, [queue_name], auth=None, refresh_ms=300) as url:
        no_events = "delete window.EventSource;"
        async with browser_tab(f"{url}/queues/{queue_name}", init_script=no_events) as tab:
            await expect(tab.locator("#connection")).to_contain_text("polling")
            job_id = await queue.add_job("late", None)
            await expect(tab.locator(f'#jobs tr[data-job="{job_id}"]')).to_contain_text("late")


async def test_retry_from_the_job_page_moves_a_failed_job_to_waiting(
    page: Any, make_queue: Callable[..., JobQueue], queue_name: str, dashboard: str
) -> None:
    worker = make_queue(dlq=DLQConfig(enabled=False))

    def broken(job: Any) -> None:
        raise RuntimeError("broken for good")

    worker.process("broken", broken)
    await worker.start_worker()
    failed = await worker.add_job("broken", {"n": 1}, attempts=1)
    assert (await worker.wait_for(failed, 30_000)).status is JobStatus.FAILED
    await worker.close()

    await expect(page.locator('[data-status="failed"] .number')).to_have_text("1")
    await page.locator('[data-status="failed"]').click()
    row = page.locator(f'#jobs tr[data-job="{failed}"]')
    await expect(row.locator("td.reason")).to_have_text("RuntimeError: broken for good")
    await row.get_by_role("link", name=failed).click()
    await expect(page.locator("#job-id")).to_have_text(failed)
    assert page.url.endswith(f"/queues/{queue_name}/jobs/{failed}")
    await expect(page.locator("#job-status")).to_have_text("failed")
    await expect(page.locator('[data-field="stack trace"]')).to_contain_text("RuntimeError")

    await page.locator("#job-actions").get_by_role("button", name="Retry").click()
    await expect(page.locator("#message")).to_have_text("Retry: retried: 1")
    await expect(page.locator("#job-status")).to_have_text("waiting")
    await expect(page.locator("#job-actions button")).to_have_text(["Remove"])
    info = await make_queue().get_job_status(failed)
    assert info is not None and info.status is JobStatus.WAITING and info.attempts == 0


async def test_promote_run_a_schedule_now_and_remove_it(
    page: Any, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue()
    later = await queue.add_job("later", None, delay=3_600_000)
    schedule = await queue.schedule_job("digest", None, "0 8 * * *")
    await expect(page.locator(f'#schedules tr[data-schedule="{schedule}"]')).to_contain_text(
        "0 8 * * *"
    )
    await page.locator('[data-status="delayed"]').click()
    row = page.locator(f'#jobs tr[data-job="{later}"]')
    await row.get_by_role("button", name="Promote").click()
    await expect(page.locator("#message")).to_have_text("Promote: promoted: 1")
    await expect(row).to_have_count(0)
    await expect(page.locator('[data-status="waiting"] .number')).to_have_text("1")

    schedule_row = page.locator(f'#schedules tr[data-schedule="{schedule}"]')
    await schedule_row.get_by_role("button", name="Run now").click()
    await expect(page.locator("#message")).to_contain_text("Run now: enqueued: ")
    await expect(page.locator('[data-status="waiting"] .number')).to_have_text("2")
    await schedule_row.get_by_role("button", name="Unschedule").click()
    await expect(page.locator("#schedules-empty")).to_be_visible()
    assert await queue.list_schedules() == []
    stats = await queue.get_stats()
    assert (stats.waiting, stats.delayed) == (2, 0)


async def test_pause_resume_and_drain_from_the_page(
    page: Any, make_queue: Callable[..., JobQueue]
) -> None:
    queue = make_queue()
    for i in range(3):
        await queue.add_job("email", i)
    await expect(page.locator('[data-status="waiting"] .number')).to_have_text("3")

    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#queue-state")).to_have_text("paused")
    await expect(page.locator('[data-status="paused"] .number')).to_have_text("3")
    assert await queue.is_paused()

    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#queue-state")).to_have_text("running")
    assert not await queue.is_paused()

    await page.get_by_role("button", name="Drain", exact=True).click()  # confirmed
    await expect(page.locator("#message")).to_have_text("Drain: removed: 3")
    await expect(page.locator('[data-status="waiting"] .number')).to_have_text("0")
    assert (await queue.get_stats()).waiting == 0


ATTACK = '<img src=x onerror="window.injected=1"><script>window.injected=2</script>'
#: A queue name holds no whitespace: an attack without it.
NAME_ATTACK = "<img/src=x/onerror=window.injected=3>"


async def test_job_name_data_error_and_queue_name_are_shown_as_text(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    worker = make_queue()

    def broken(job: Any) -> None:
        raise RuntimeError(ATTACK)

    worker.process(ATTACK, broken)
    await worker.start_worker()
    job_id = await worker.add_job(ATTACK, ATTACK, attempts=1)
    assert (await worker.wait_for(job_id, 30_000)).status is JobStatus.DLQ
    await make_queue(name=NAME_ATTACK).add_job("x", None)

    with running_dashboard(redis_url, None, auth=None, refresh_ms=NO_POLLING_MS) as url:
        async with browser_tab(url) as tab:
            row = tab.locator("#queues-table tr").filter(has_text="onerror=window.injected=3")
            await expect(row.locator("td").first).to_have_text(NAME_ATTACK)
            await expect(tab.locator("#queues")).to_contain_text(NAME_ATTACK)
            await tab.goto(f"{url}/queues/{queue_name}?status=dlq")
            job_row = tab.locator(f'#jobs tr[data-job="{job_id}"]')
            await expect(job_row.locator("td").nth(1)).to_have_text(ATTACK)
            await expect(job_row.locator("td.reason")).to_have_text(f"RuntimeError: {ATTACK}")
            await job_row.get_by_role("link", name=job_id).click()
            await expect(tab.locator('[data-field="data"]')).to_have_text(ATTACK)
            await expect(tab.locator('[data-field="name"]')).to_have_text(ATTACK)
            await expect(tab.locator('[data-field="failed reason"]')).to_contain_text(ATTACK)
            # The DOM holds the payloads as text: no element they name was made, none ran.
            assert await tab.locator("main img, main script, header img").count() == 0
            assert await tab.evaluate("window.injected") is None


async def test_search_by_name_and_by_id(page: Any, make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    ids = await queue.add_jobs([("email" if i % 2 else "report", i) for i in range(4)])
    await expect(page.locator("#jobs tbody tr")).to_have_count(4)
    await page.locator("#name-filter").fill("repo")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#jobs tbody tr")).to_have_count(2)
    await expect(page.locator(f'#jobs tr[data-job="{ids[2]}"]')).to_be_visible()
    assert "name=repo" in page.url
    await page.locator("#id-filter").fill(ids[3])
    await page.get_by_role("button", name="Open").click()
    await expect(page.locator("#job-id")).to_have_text(ids[3])
    await expect(page.locator('[data-field="name"]')).to_have_text("email")
    await page.locator("#back").click()
    await page.locator("#id-filter").fill("no-such-job")
    await page.get_by_role("button", name="Open").click()
    await expect(page.locator("#missing")).to_have_text(f"No job no-such-job in {queue.name}.")


async def test_a_read_only_dashboard_has_no_buttons_and_refuses_a_forged_post(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    worker = make_queue()
    [dead] = await dead_letter(worker, 1)
    await worker.close()
    queue = make_queue()
    await queue.schedule_every("tick", None, 3_600_000)
    with running_dashboard(redis_url, [queue_name], auth=None, read_only=True) as url:
        async with browser_tab(f"{url}/queues/{queue_name}?status=dlq") as tab:
            await expect(tab.locator(f'#jobs tr[data-job="{dead}"]')).to_contain_text("broken")
            await expect(tab.locator("#schedules tbody tr")).to_have_count(1)
            assert await tab.locator("button").count() == 2  # the two searches' only
            await tab.goto(f"{url}/queues/{queue_name}/jobs/{dead}")
            await expect(tab.locator("#job-id")).to_have_text(dead)
            assert await tab.locator("button").count() == 0
            # The page's own token, sent by the page: the server still refuses.
            status = await tab.evaluate(
                """async (path) => {
                    const token = document.querySelector('meta[name="jobqueue-csrf"]').content;
                    const response = await fetch(path, {method: "POST",
                        headers: {"X-CSRF-Token": token}});
                    return [response.status, (await response.json()).error];
                }""",
                f"{url}/api/queues/{queue_name}/jobs/{dead}/retry",
            )
            assert status == [403, "the dashboard is read-only"]
    info = await queue.get_job_status(dead)
    assert info is not None and info.status is JobStatus.DLQ


@contextmanager
def other_site(html: str) -> Iterator[str]:
    """A page of another origin (another host name and port) that serves ``html``."""
    body = html.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_cross_site_post_is_refused(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    """No password (loopback): the origin checks alone refuse the other site's form."""
    queue = make_queue()
    await queue.add_job("email", None)
    with running_dashboard(redis_url, [queue_name], auth=None) as url:
        target = f"{url}/api/queues/{queue_name}/pause"
        form = f'<form method="post" action="{target}"><button id="go">win</button></form>'
        with other_site(form) as evil:
            # The other site's script cannot read the answer (Cross-Origin-Resource-Policy).
            blocked = "ERR_BLOCKED_BY_RESPONSE"
            async with browser_tab(evil, credentials=False, expected_error=blocked) as tab:
                async with tab.expect_navigation():
                    await tab.locator("#go").click()
                await expect(tab.locator("body")).to_contain_text("request refused")
                # A script of the other site: whether the browser sends its request or
                # stops it, nothing changes.
                await tab.goto(evil)
                await tab.evaluate(
                    "(url) => fetch(url, {method: 'POST', mode: 'no-cors'}).catch(() => null)",
                    target,
                )
    assert not await queue.is_paused()


async def test_auth_is_required_off_loopback(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    """``jobqueue dashboard --host 0.0.0.0`` serves only with a password, and asks for it."""
    await make_queue().add_job("email", None)
    port = free_port()
    command = [sys.executable, "-m", "jobqueue.cli", "--redis", redis_url, "--log-level"]
    command += ["warning", "dashboard", "--host", "0.0.0.0", "--port", str(port)]
    refused = subprocess.run(
        command,
        env={**os.environ, "JOBQUEUE_DASHBOARD_PASSWORD": "", "JOBQUEUE_DASHBOARD_TOKEN": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "--insecure" in refused.stderr
    process = subprocess.Popen(
        command,
        env={**os.environ, "JOBQUEUE_DASHBOARD_PASSWORD": PASSWORD},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://{HOST}:{port}"

        def answers() -> bool:
            assert process.poll() is None, process.communicate()[0]
            try:
                return httpx.get(url, timeout=5).status_code == 401
            except httpx.TransportError:
                return False

        wait_until("jobqueue dashboard answers", answers, timeout=60)
        async with browser_tab(None, credentials=False) as tab:
            # Headless, the browser cannot ask for the password: the page is refused.
            with pytest.raises(playwright.Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
                await tab.goto(url)
            assert await tab.locator("#queues-table").count() == 0
        assert httpx.get(url, timeout=30).text == "authentication required"
        async with browser_tab(url) as tab:
            row = tab.locator(f'#queues-table tr[data-queue="{queue_name}"]')
            await expect(row.locator('[data-count="waiting"]')).to_have_text("1")
    finally:
        process.terminate()
        await asyncio.to_thread(process.communicate, timeout=60)


async def test_the_page_works_mounted_under_a_path(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    await queue.add_job("email", None)
    with running_dashboard(redis_url, [queue_name], auth=None, mount_at="/admin/jobs") as url:
        async with browser_tab(url) as tab:  # no trailing slash: the outer app redirects
            await tab.get_by_role("link", name=queue_name).first.click()
            await expect(tab.locator('[data-status="waiting"] .number')).to_have_text("1")
            assert tab.url.startswith(f"{url}/queues/")
            await tab.get_by_role("button", name="Pause").click()
            await expect(tab.locator("#queue-state")).to_have_text("paused")
    assert await queue.is_paused()


@pytest.mark.parametrize("queue_name", ["emails"])  # the name the README's pictures show
async def test_screenshots_of_the_overview_a_queue_and_a_job(
    redis_url: str, make_queue: Callable[..., JobQueue], tmp_path: Path
) -> None:
    """Saved in the test's folder, or in $JOBQUEUE_SCREENSHOTS (the README's come from
    there: JOBQUEUE_SCREENSHOTS=docs/images pytest tests/test_dashboard_browser.py -k
    screenshots)."""
    folder = Path(os.environ.get("JOBQUEUE_SCREENSHOTS") or tmp_path)
    worker = make_queue(worker=WorkerConfig(concurrency=2))
    worker.process("thumbnail", lambda job: {"width": 128})
    sending = asyncio.Event()

    async def send(job: Any) -> None:
        await job.log(f"connecting to smtp.example.com for {job.data['to']}")
        await job.update_progress(40)
        if job.data["to"].endswith("@bounce.example"):
            raise RuntimeError(f"550 mailbox unavailable: {job.data['to']}")
        await sending.wait()

    worker.process("send-email", send)
    await worker.start_worker()
    bounced = [
        await worker.add_job("send-email", {"to": f"{who}@bounce.example"}, attempts=1)
        for who in ("ann", "bob")
    ]
    for job_id in [*bounced, *await worker.add_jobs([("thumbnail", i) for i in range(12)])]:
        await worker.wait_for(job_id, 30_000)
    queue = make_queue()
    # Two run (the worker's two slots), four wait.
    await queue.add_jobs([("send-email", {"to": f"user{i}@example.com"}) for i in range(6)])
    await queue.add_job("send-email", {"to": "later@example.com"}, delay=3_600_000)
    await queue.schedule_job("daily-digest", None, "0 8 * * *")
    reports = make_queue(name="reports")
    await reports.add_jobs([("monthly-report", {"month": m}) for m in range(1, 4)])
    await reports.pause()
    with running_dashboard(redis_url, None, auth=None) as url:
        async with browser_tab(url) as tab:
            await tab.set_viewport_size({"width": 1280, "height": 400})
            row = tab.locator('#queues-table tr[data-queue="emails"]')
            await expect(row.locator('[data-count="waiting"]')).to_have_text("4")
            await expect(row.locator('[data-count="active"]')).to_have_text("2")
            await expect(row.locator('[data-rate="completed"]')).to_have_text("12")
            reports_row = tab.locator('#queues-table tr[data-queue="reports"]')
            await expect(reports_row.locator('[data-count="paused"]')).to_have_text("3")
            overview = folder / "dashboard-overview.png"
            await tab.screenshot(path=str(overview), full_page=True)

            await tab.set_viewport_size({"width": 1280, "height": 720})
            await row.get_by_role("link", name="emails").click()
            await expect(tab.locator("#jobs tbody tr")).to_have_count(4)
            await expect(tab.locator('[data-total="completed"]')).to_have_text("12")
            await expect(tab.locator("#workers tbody tr")).to_have_count(1)
            queue_page = folder / "dashboard-queue.png"
            await tab.screenshot(path=str(queue_page), full_page=True)

            await tab.locator('[data-status="dlq"]').click()
            await tab.locator(f'#jobs tr[data-job="{bounced[0]}"] a').click()
            await expect(tab.locator('[data-field="stack trace"]')).to_be_visible()
            await expect(tab.locator('[data-field="logs"]')).to_contain_text("smtp.example")
            job_page = folder / "dashboard-job.png"
            await tab.screenshot(path=str(job_page), full_page=True)
    sending.set()
    await worker.close()
    for shot in (overview, queue_page, job_page):
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
