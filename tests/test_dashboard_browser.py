"""The dashboard's page in headless Chromium (Debian's, driven by Playwright), against a
real uvicorn and redis-server: what it shows, its buttons, and that job data stays text.

Skipped when Chromium is not installed (`make test` installs it)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobqueue import JobQueue, JobStatus
from jobqueue.dashboard import BasicAuth

from .dashboard_server import PASSWORD, running_dashboard
from .test_dashboard import dead_letter

playwright = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

#: Generous bounds for what the page shows; each check polls, none sleeps.
EXPECT_MS = 20_000
playwright.expect.set_options(timeout=EXPECT_MS)


@pytest.fixture
def dashboard(redis_url: str, queue_name: str) -> Iterator[str]:
    with running_dashboard(
        redis_url, [queue_name], auth=BasicAuth("admin", PASSWORD), refresh_ms=500
    ) as url:
        yield url


@pytest.fixture
async def page(dashboard: str) -> AsyncIterator[Any]:
    """A page of the dashboard, logged in; the test fails on any script error or
    Content-Security-Policy violation it logs."""
    problems: list[str] = []
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = await browser.new_context(
            http_credentials={"username": "admin", "password": PASSWORD}
        )
        tab = await context.new_page()
        tab.set_default_timeout(EXPECT_MS)
        tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        # What the page asks for and is told is not there (a search for an unknown job id)
        # the browser logs as an error too; it is no problem of the page.
        absent = "/no-such-job"
        tab.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text} ({message.location})")
                if message.type == "error" and not message.location["url"].endswith(absent)
                else None
            ),
        )
        tab.on("dialog", lambda dialog: dialog.accept())
        await tab.goto(dashboard)
        # Shown after the first load: the dashboard follows the queue's events from here.
        await expect(tab.locator("#queue")).to_be_visible()
        yield tab
        await browser.close()
    assert problems == []


def expect(locator: Any) -> Any:
    return playwright.expect(locator)


async def test_page_shows_the_queue_and_retries_a_dead_job(
    page: Any, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    worker = make_queue()
    [dead] = await dead_letter(worker, 1)
    await worker.close()
    queue = make_queue()
    waiting = await queue.add_job("email", {"to": "a@example.com"})

    await expect(page.locator("#queue-name")).to_have_text(queue_name)
    await expect(page.locator('[data-status="waiting"] .number')).to_have_text("1")
    await expect(page.locator('[data-status="dlq"] .number')).to_have_text("1")
    await expect(page.locator(f'#jobs tr[data-job="{waiting}"]')).to_contain_text("email")

    await page.locator('[data-status="dlq"]').click()
    row = page.locator(f'#jobs tr[data-job="{dead}"]')
    await expect(row).to_contain_text("RuntimeError: broken 0")
    await row.get_by_role("link", name=dead).click()
    await expect(page.locator("#job-id")).to_have_text(dead)
    await expect(page.locator('#job-fields [data-field="stack trace"]')).to_contain_text(
        "RuntimeError"
    )
    assert f"job={dead}" in page.url and "status=dlq" in page.url

    await row.get_by_role("button", name="Retry").click()
    await expect(page.locator("#message")).to_have_text("Retry: retried: 1")
    await expect(row).to_have_count(0)
    await expect(page.locator('[data-status="waiting"] .number')).to_have_text("2")
    info = await queue.get_job_status(dead)
    assert info is not None and info.status is JobStatus.WAITING


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

    await page.get_by_role("button", name="Drain").click()  # the confirm is accepted
    await expect(page.locator("#message")).to_have_text("Drain: removed: 3")
    await expect(page.locator('[data-status="waiting"] .number')).to_have_text("0")
    assert (await queue.get_stats()).waiting == 0


async def test_the_page_follows_new_jobs(page: Any, make_queue: Callable[..., JobQueue]) -> None:
    queue = make_queue()
    await expect(page.locator("#jobs-empty")).to_be_visible()
    job_id = await queue.add_job("late", None)
    await expect(page.locator(f'#jobs tr[data-job="{job_id}"]')).to_contain_text("late")


async def test_the_page_follows_a_job_to_completion(
    page: Any, make_queue: Callable[..., JobQueue]
) -> None:
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
    release.set()
    await expect(page.locator('[data-status="completed"] .number')).to_have_text("1")
    await expect(page.locator('[data-rate="completed"]')).to_have_text("1")
    bar = page.locator("#chart g title", has_text="1 completed, 0 failed")
    await expect(bar).to_have_count(1)
    await expect(page.locator('[data-status="active"] .number')).to_have_text("0")
    await expect(page.locator("#jobs-empty")).to_be_visible()


ATTACK = '<img src=x onerror="window.injected=1"><script>window.injected=2</script>'


async def test_job_name_data_and_error_are_shown_as_text_never_run(
    page: Any, make_queue: Callable[..., JobQueue]
) -> None:
    worker = make_queue()

    def broken(job: Any) -> None:
        raise RuntimeError(ATTACK)

    worker.process(ATTACK, broken)
    await worker.start_worker()
    job_id = await worker.add_job(ATTACK, ATTACK, attempts=1)
    assert (await worker.wait_for(job_id, 30_000)).status is JobStatus.DLQ

    await page.locator('[data-status="dlq"]').click()
    row = page.locator(f'#jobs tr[data-job="{job_id}"]')
    await expect(row.locator("td").nth(1)).to_have_text(ATTACK)
    await expect(row.locator("td.reason")).to_have_text(f"RuntimeError: {ATTACK}")
    await row.get_by_role("link", name=job_id).click()
    await expect(page.locator('#job-fields [data-field="data"]')).to_have_text(ATTACK)
    await expect(page.locator('#job-fields [data-field="name"]')).to_have_text(ATTACK)
    await expect(page.locator('#job-fields [data-field="failed reason"]')).to_contain_text(ATTACK)
    # The DOM holds the payload as text: no element it names was made, none of it ran.
    assert await page.locator("main img, main script").count() == 0
    assert await page.evaluate("window.injected") is None


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
    await expect(page.locator('#job-fields [data-field="name"]')).to_have_text("email")
    await page.locator("#id-filter").fill("no-such-job")
    await page.get_by_role("button", name="Open").click()
    await expect(page.locator("#message")).to_have_text(f"No job no-such-job in {queue.name}.")


@pytest.mark.parametrize("queue_name", ["emails"])  # the name the README's pictures show
async def test_screenshots_of_the_overview_and_a_job(
    page: Any, make_queue: Callable[..., JobQueue], tmp_path: Path
) -> None:
    """Saved in the test's folder, or in $JOBQUEUE_SCREENSHOTS (the README's come from
    there: JOBQUEUE_SCREENSHOTS=docs/images pytest tests/test_dashboard_browser.py)."""
    folder = Path(os.environ.get("JOBQUEUE_SCREENSHOTS") or tmp_path)
    worker = make_queue()
    worker.process("thumbnail", lambda job: {"width": 128})
    dead = await dead_letter(worker, 2)
    for job_id in await worker.add_jobs([("thumbnail", i) for i in range(12)]):
        await worker.wait_for(job_id, 30_000)
    await worker.close()
    queue = make_queue()
    await queue.add_jobs([("send-email", {"to": f"user{i}@example.com"}) for i in range(4)])
    await queue.add_job("send-email", {"to": "later@example.com"}, delay=3_600_000)
    await queue.schedule_job("daily-digest", None, "0 8 * * *")
    await page.set_viewport_size({"width": 1280, "height": 900})
    await expect(page.locator("#jobs tbody tr")).to_have_count(4)
    await expect(page.locator("#queues a")).to_have_text("emails 4 waiting · 0 active")
    await expect(page.locator("#health dt").first).to_be_visible()
    await expect(page.locator('[data-rate="completed"]')).to_have_text("12")
    overview = folder / "dashboard-overview.png"
    await page.screenshot(path=str(overview), full_page=True)
    await page.locator('[data-status="dlq"]').click()
    await page.locator(f'#jobs tr[data-job="{dead[0]}"] a').click()
    await expect(page.locator('#job-fields [data-field="stack trace"]')).to_be_visible()
    job_page = folder / "dashboard-job.png"
    await page.screenshot(path=str(job_page), full_page=True)
    for shot in (overview, job_page):
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


async def test_a_read_only_page_has_no_buttons(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    worker = make_queue()
    [dead] = await dead_letter(worker, 1)
    await worker.close()
    with running_dashboard(redis_url, [queue_name], auth=None, read_only=True) as url:
        async with playwright.async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=CHROMIUM, headless=True)
            tab = await browser.new_page()
            await tab.goto(f"{url}/#status=dlq")
            await expect(tab.locator(f'#jobs tr[data-job="{dead}"]')).to_contain_text("broken")
            assert await tab.locator("button[data-action]").count() == 0
            await browser.close()
    info = await make_queue().get_job_status(dead)
    assert info is not None and info.status is JobStatus.DLQ


async def test_the_page_works_mounted_under_a_path(
    redis_url: str, make_queue: Callable[..., JobQueue], queue_name: str
) -> None:
    queue = make_queue()
    await queue.add_job("email", None)
    with running_dashboard(redis_url, [queue_name], auth=None, mount_at="/admin/jobs") as url:
        async with playwright.async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=CHROMIUM, headless=True)
            tab = await browser.new_page()
            tab.on("dialog", lambda dialog: dialog.accept())
            await tab.goto(url)  # no trailing slash: the outer app redirects
            await expect(tab.locator('[data-status="waiting"] .number')).to_have_text("1")
            await tab.get_by_role("button", name="Pause").click()
            await expect(tab.locator("#queue-state")).to_have_text("paused")
            await browser.close()
    assert await queue.is_paused()
