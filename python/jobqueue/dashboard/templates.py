"""The dashboard's one HTML page: a shell that its own script fills from the JSON API.

Values are escaped here and the script writes text, never HTML, so nothing a job carries
can become markup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from html import escape
from importlib.resources import files


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str

    @property
    def version(self) -> str:
        """Part of the asset's URL, so a new release is never served from a stale cache."""
        return hashlib.sha256(self.body).hexdigest()[:12]


def load_assets() -> dict[str, Asset]:
    static = files("jobqueue.dashboard").joinpath("static")
    return {
        "dashboard.js": Asset(
            static.joinpath("dashboard.js").read_bytes(), "text/javascript; charset=utf-8"
        ),
        "dashboard.css": Asset(
            static.joinpath("dashboard.css").read_bytes(), "text/css; charset=utf-8"
        ),
    }


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="jobqueue-base" content="{base}">
<meta name="jobqueue-csrf" content="{csrf}">
<meta name="jobqueue-read-only" content="{read_only}">
<meta name="jobqueue-refresh-ms" content="{refresh_ms}">
<title>jobqueue</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{base}/static/dashboard.css?v={css_version}">
<script src="{base}/static/dashboard.js?v={js_version}" defer></script>
</head>
<body>
<header>
  <h1>jobqueue</h1>
  <nav id="queues" aria-label="Queues"></nav>
  <span id="connection" role="status"></span>
</header>
<main>
  <p id="message" role="alert" hidden></p>
  <section id="queue" hidden>
    <div class="title">
      <h2 id="queue-name"></h2>
      <span id="queue-state" class="badge"></span>
      <div id="queue-actions" class="actions"></div>
    </div>
    <div id="counts" class="counts"></div>
    <section id="chart-section">
      <h3>Completed and failed jobs per minute, last hour</h3>
      <p class="chart-labels muted"><span id="chart-max"></span></p>
      <svg id="chart" viewBox="0 0 600 120" preserveAspectRatio="none" role="img"
        aria-label="Completed and failed jobs per minute"></svg>
      <p class="chart-labels muted"><span>60 min ago</span><span>now</span></p>
      <p id="chart-note" class="muted"></p>
    </section>
    <section id="jobs-section">
      <h3 id="jobs-title"></h3>
      <div class="toolbar">
        <form id="name-search" role="search">
          <input id="name-filter" type="search" placeholder="Job name contains"
            aria-label="Job name contains">
          <button type="submit">Filter</button>
        </form>
        <form id="id-search" role="search">
          <input id="id-filter" type="search" placeholder="Job id" aria-label="Job id">
          <button type="submit">Open</button>
        </form>
        <div id="bulk-actions" class="actions"></div>
      </div>
      <table id="jobs">
        <thead><tr><th>Id</th><th>Name</th><th>Attempts</th><th>Created</th>
          <th>Finished</th><th>Reason</th><th></th></tr></thead>
        <tbody></tbody>
      </table>
      <p id="jobs-empty" class="muted" hidden>No jobs.</p>
      <div class="pager">
        <button type="button" id="page-previous">Previous</button>
        <span id="page-range" class="muted"></span>
        <button type="button" id="page-next">Next</button>
      </div>
    </section>
    <section id="job" hidden>
      <h3>Job <code id="job-id"></code>
        <button type="button" id="job-close" class="link">close</button></h3>
      <div id="job-actions" class="actions"></div>
      <dl id="job-fields"></dl>
    </section>
    <section>
      <h3>Schedules</h3>
      <table id="schedules">
        <thead><tr><th>Id</th><th>Name</th><th>Cron / every</th><th>Next run</th>
          <th>Last run</th><th></th></tr></thead>
        <tbody></tbody>
      </table>
      <p id="schedules-empty" class="muted" hidden>No schedules.</p>
    </section>
    <section id="workers-section" hidden>
      <h3>Workers</h3>
      <table id="workers"><thead></thead><tbody></tbody></table>
    </section>
    <section>
      <h3>Redis</h3>
      <dl id="health"></dl>
    </section>
  </section>
</main>
</body>
</html>
"""


def render_page(
    *, base: str, csrf_token: str, read_only: bool, refresh_ms: int, assets: dict[str, Asset]
) -> str:
    return PAGE.format(
        base=escape(base),
        csrf=escape(csrf_token),
        read_only="true" if read_only else "false",
        refresh_ms=int(refresh_ms),
        css_version=assets["dashboard.css"].version,
        js_version=assets["dashboard.js"].version,
    )
