"""The dashboard's page in headless Chromium (Debian's, driven by Playwright), against a
real uvicorn and redis-server: what it shows, its buttons, and that job data stays text.

Skipped when Chromium is not installed (`make test` installs it)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
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
        tab.on(
            "console",
            lambda message: (
                problems.append(f"console: {message.text} ({message.location})")
                if message.type == "error"
                else None
            ),
        )
        tab.on("dialog", lambda dialog: dialog.accept())
        await tab.goto(dashboard)
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


async def test_job_content_is_shown_as_text_never_run(
    page: Any, make_queue: Callable[..., JobQueue]
) -> None:
    attack = '<img src=x onerror="window.injected=1"><script>window.injected=2</script>'
    queue = make_queue()
    job_id = await queue.add_job(attack, attack)
    row = page.locator(f'#jobs tr[data-job="{job_id}"]')
    await expect(row).to_contain_text(attack)
    await row.get_by_role("link", name=job_id).click()
    await expect(page.locator('#job-fields [data-field="data"]')).to_contain_text(attack)
    assert await page.locator("#jobs img, #job img, #jobs script, #job script").count() == 0
    assert await page.evaluate("window.injected") is None


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
