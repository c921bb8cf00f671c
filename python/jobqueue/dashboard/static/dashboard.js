// The jobqueue dashboard: fills the page from the JSON API and sends the actions.
// Everything a job carries is written as text (textContent), never as HTML.
"use strict";

(function () {
  const meta = (name) => document.querySelector(`meta[name="jobqueue-${name}"]`).content;
  const BASE = meta("base");
  const CSRF = meta("csrf");
  const READ_ONLY = meta("read-only") === "true";
  const REFRESH_MS = Number(meta("refresh-ms"));
  const HEALTH_EVERY = 10; // refreshes between two health checks (they read Redis's config)
  const STATUSES = ["waiting", "active", "delayed", "paused", "completed", "failed", "dlq"];

  const PAGE_SIZE = 50;
  const state = {
    queue: null, status: "waiting", job: null, name: "", offset: 0, refreshes: 0, timer: null,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "onclick") node.addEventListener("click", value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : String(child ?? ""));
    }
    return node;
  }

  function time(ms) {
    if (ms === null || ms === undefined || ms === 0) return "";
    return new Date(ms).toLocaleString();
  }

  function duration(ms) {
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    return `${Math.round(ms / 60000)} min`;
  }

  function show(text, isError) {
    const box = $("message");
    box.textContent = text;
    box.className = isError ? "error" : "ok";
    box.hidden = !text;
  }

  async function api(method, path) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
    const response = await fetch(`${BASE}/api${path}`, {
      method, headers, credentials: "same-origin", cache: "no-store",
    });
    const body = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  const q = () => `/queues/${encodeURIComponent(state.queue)}`;

  // The view lives in the URL's hash (#queue=..&status=..&job=..), so it can be linked.
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    state.queue = params.get("queue");
    state.status = STATUSES.includes(params.get("status")) ? params.get("status") : "waiting";
    state.job = params.get("job");
    state.name = params.get("name") || "";
    state.offset = Math.max(0, Number(params.get("offset")) || 0);
  }

  function writeHash() {
    const params = new URLSearchParams();
    if (state.queue) params.set("queue", state.queue);
    params.set("status", state.status);
    if (state.job) params.set("job", state.job);
    if (state.name) params.set("name", state.name);
    if (state.offset) params.set("offset", String(state.offset));
    history.replaceState(null, "", `#${params}`);
  }

  function go(changes) {
    Object.assign(state, changes);
    writeHash();
    refresh(true);
  }

  async function act(label, method, path, confirmText) {
    if (confirmText && !window.confirm(confirmText)) return;
    try {
      const result = await api(method, path);
      const counts = Object.entries(result).map(([k, v]) => `${k}: ${v}`).join(", ");
      show(`${label}: ${counts}`, false);
    } catch (error) {
      show(`${label} failed: ${error.message}`, true);
    }
    await refresh(true);
  }

  function button(label, onclick, extra) {
    const attrs = { type: "button", onclick, "data-action": label };
    if (extra) Object.assign(attrs, extra);
    return el("button", attrs, label);
  }

  function renderQueues(queues) {
    const nav = $("queues");
    nav.replaceChildren(...queues.map((queue) => {
      const s = queue.stats;
      const link = el("a", { href: "#", "data-queue": queue.name, onclick: (event) => {
        event.preventDefault();
        go({ queue: queue.name, job: null, offset: 0, name: "" });
      } }, queue.name, el("span", { class: "muted" },
        ` ${s.waiting + s.paused} waiting · ${s.active} active`));
      if (queue.name === state.queue) link.setAttribute("aria-current", "page");
      if (queue.paused) link.classList.add("paused");
      return link;
    }));
  }

  function renderQueue(detail) {
    $("queue").hidden = false;
    $("queue-name").textContent = detail.name;
    $("queue-state").textContent = detail.paused ? "paused" : "running";
    $("queue-state").className = detail.paused ? "badge warn" : "badge good";
    const stats = detail.stats;
    $("counts").replaceChildren(
      ...STATUSES.map((status) => {
        const card = el("a", { href: "#", class: "count", "data-status": status,
          onclick: (event) => { event.preventDefault(); go({ status, job: null, offset: 0 }); } },
        el("span", { class: "number" }, stats[status]), el("span", {}, status));
        if (status === state.status) card.setAttribute("aria-current", "true");
        return card;
      }),
      el("div", { class: "count static" },
        el("span", { class: "number", "data-latency": "" }, duration(stats.latency_ms)),
        el("span", {}, "latency")),
      el("div", { class: "count static" },
        el("span", { class: "number", "data-rate": "completed" }, detail.last_minute.completed),
        el("span", {}, "completed / min")),
      el("div", { class: "count static" },
        el("span", { class: "number", "data-rate": "failed" }, detail.last_minute.failed),
        el("span", {}, "failed / min")),
    );
    const actions = [];
    if (!READ_ONLY) {
      actions.push(detail.paused
        ? button("Resume", () => act("Resume", "POST", `${q()}/resume`))
        : button("Pause", () => act("Pause", "POST", `${q()}/pause`)));
      actions.push(button("Drain", () => act("Drain", "POST", `${q()}/drain`,
        `Remove every waiting job of ${detail.name}?`)));
    }
    $("queue-actions").replaceChildren(...actions);
    renderSchedules(detail.schedules);
    renderWorkers(detail.workers);
  }

  function renderJobs(page) {
    const jobs = page.jobs;
    $("jobs-title").textContent = `${state.status} jobs${state.name ? ` named *${state.name}*` : ""}`;
    $("page-previous").hidden = page.offset === 0;
    $("page-next").hidden = !page.more;
    $("page-range").textContent = jobs.length
      ? `${page.offset + 1}–${page.offset + jobs.length}` : "";
    const bulk = [];
    if (!READ_ONLY && state.status === "failed" && jobs.length) {
      bulk.push(button("Retry all", () => act("Retry all", "POST", `${q()}/retry?status=failed`,
        "Retry every failed job?")));
    }
    if (!READ_ONLY && state.status === "dlq" && jobs.length) {
      bulk.push(button("Replay DLQ", () => act("Replay DLQ", "POST", `${q()}/retry?status=dlq`,
        "Move every dead-lettered job back to waiting?")));
    }
    $("bulk-actions").replaceChildren(...bulk);
    const rows = jobs.map((job) => el("tr", { "data-job": job.id },
      el("td", {}, el("a", { href: "#", onclick: (event) => {
        event.preventDefault();
        go({ job: job.id });
      } }, job.id)),
      el("td", {}, job.name),
      el("td", {}, `${job.attempts} / ${job.max_attempts}`),
      el("td", {}, time(job.created_at)),
      el("td", {}, time(job.finished_at)),
      el("td", { class: "reason" }, job.failed_reason ?? ""),
      el("td", { class: "actions" }, ...jobActions(job)),
    ));
    $("jobs").tBodies[0].replaceChildren(...rows);
    $("jobs-empty").hidden = jobs.length > 0;
  }

  function jobActions(job) {
    if (READ_ONLY) return [];
    const path = `${q()}/jobs/${encodeURIComponent(job.id)}`;
    const actions = [];
    if (job.status === "failed" || job.status === "dlq") {
      actions.push(button("Retry", () => act("Retry", "POST", `${path}/retry`)));
    }
    if (job.status !== "active") {
      actions.push(button("Remove", () => act("Remove", "DELETE", path,
        `Remove job ${job.id}?`), { class: "danger" }));
    }
    return actions;
  }

  function pretty(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function renderJob(job) {
    $("job").hidden = false;
    $("job-id").textContent = job.id;
    $("job-actions").replaceChildren(...jobActions(job));
    const fields = [
      ["status", job.status], ["name", job.name], ["group", job.group],
      ["attempts", `${job.attempts} / ${job.max_attempts}`], ["progress", pretty(job.progress)],
      ["priority", job.priority], ["delay", job.delay ? duration(job.delay) : ""],
      ["created", time(job.created_at)], ["processed", time(job.processed_at)],
      ["finished", time(job.finished_at)], ["schedule", job.schedule_id],
      ["data", pretty(job.data)], ["return value", job.return_value === null ? "" : pretty(job.return_value)],
      ["failed reason", job.failed_reason], ["stack trace", job.stacktrace],
      ["logs", (job.logs || []).join("\n")], ["options", pretty(job.opts)],
    ];
    $("job-fields").replaceChildren(...fields
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .flatMap(([label, value]) => [
        el("dt", {}, label), el("dd", { "data-field": label }, el("pre", {}, value)),
      ]));
  }

  function renderSchedules(schedules) {
    const rows = schedules.map((s) => el("tr", { "data-schedule": s.id },
      el("td", {}, s.id), el("td", {}, s.name),
      el("td", {}, s.cron ? `${s.cron}${s.tz ? ` (${s.tz})` : ""}` : `every ${duration(s.every)}`),
      el("td", {}, time(s.next_run_at)), el("td", {}, time(s.last_run_at)),
      el("td", { class: "actions" }, ...(READ_ONLY ? [] : [button("Unschedule",
        () => act("Unschedule", "DELETE", `${q()}/schedules/${encodeURIComponent(s.id)}`,
          `Remove schedule ${s.id}?`), { class: "danger" })])),
    ));
    $("schedules").tBodies[0].replaceChildren(...rows);
    $("schedules-empty").hidden = schedules.length > 0;
  }

  function renderWorkers(workers) {
    // null: this jobqueue has no worker registry; the Redis section shows the count.
    $("workers-section").hidden = workers === null;
    if (workers === null) return;
    const columns = [...new Set(workers.flatMap((w) => Object.keys(w)))];
    const table = $("workers");
    table.tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", {}, c))));
    table.tBodies[0].replaceChildren(...workers.map((w) => el("tr", {},
      ...columns.map((c) => el("td", {}, typeof w[c] === "object" ? JSON.stringify(w[c]) : w[c])))));
  }

  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One stacked bar per minute: completed below, failed above; the scale is the busiest
  // minute's total, written above the chart.
  function renderChart(throughput) {
    const rows = throughput.minutes;
    const width = 600, top = 2, bottom = 119, step = width / rows.length;
    const most = Math.max(1, ...rows.map((r) => r.completed + r.failed));
    const scale = (bottom - top) / most;
    const bars = rows.flatMap((row, i) => {
      const x = i * step + 1, w = step - 2;
      const done = row.completed * scale, failed = row.failed * scale;
      const label = `${new Date(row.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: `
        + `${row.completed} completed, ${row.failed} failed`;
      const group = svg("g", { "data-minute": row.at });
      group.append(svg("title", {}, label));
      group.append(svg("rect", { x, y: bottom - done, width: w, height: done, class: "bar-completed" }));
      group.append(svg("rect", {
        x, y: bottom - done - failed, width: w, height: failed, class: "bar-failed",
      }));
      return [group];
    });
    $("chart").replaceChildren(
      svg("line", { x1: 0, x2: width, y1: bottom, y2: bottom, class: "axis" }),
      ...bars,
    );
    $("chart-max").textContent = `${most} / min`;
    $("chart-note").textContent = `Counted by this dashboard since ${time(throughput.since)}.`;
  }

  function renderHealth(report) {
    const fields = [
      ["healthy", report.healthy ? "yes" : "no"], ["redis version", report.redis_version],
      ["round trip", report.redis_rtt_ms === null ? "" : `${report.redis_rtt_ms.toFixed(2)} ms`],
      ["workers", report.workers], ["scripts", report.scripts], ["error", report.error],
      ["warnings", (report.warnings || []).join("\n")],
    ];
    $("health").replaceChildren(...fields
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .flatMap(([label, value]) => [el("dt", {}, label), el("dd", { "data-field": label }, value)]));
  }

  let running = null;

  async function load(forceHealth) {
    const queues = await api("GET", "/queues");
    if (!state.queue || !queues.some((queue) => queue.name === state.queue)) {
      state.queue = queues.length ? queues[0].name : null;
      writeHash();
    }
    renderQueues(queues);
    if (!state.queue) return;
    const wanted = state.job; // a click while this load runs changes state.job
    const [detail, jobs, job, throughput] = await Promise.all([
      api("GET", q()),
      api("GET", `${q()}/jobs?${new URLSearchParams({
        status: state.status, offset: state.offset, limit: PAGE_SIZE, name: state.name,
      })}`),
      wanted ? api("GET", `${q()}/jobs/${encodeURIComponent(wanted)}`).catch(() => null)
        : Promise.resolve(null),
      api("GET", `${q()}/throughput`),
    ]);
    renderQueue(detail);
    renderChart(throughput);
    renderJobs(jobs);
    if (wanted !== state.job) return; // the next load shows the job asked for now
    if (job) renderJob(job);
    else $("job").hidden = true;
    if (wanted && !job) show(`No job ${wanted} in ${state.queue}.`, true);
    if (forceHealth || state.refreshes % HEALTH_EVERY === 0) {
      renderHealth(await api("GET", `${q()}/health`));
    }
    state.refreshes += 1;
  }

  // One load at a time; a forced one (after an action or a click) runs after the current.
  async function refresh(forceHealth) {
    clearTimeout(state.timer);
    const previous = running;
    running = (async () => {
      await previous;
      try {
        await load(forceHealth);
        $("connection").textContent = `updated ${new Date().toLocaleTimeString()}`;
        $("connection").className = "muted";
      } catch (error) {
        $("connection").textContent = `not updated: ${error.message}`;
        $("connection").className = "error";
      }
    })();
    await running;
    // Loads queued behind each other each end here: only the last keeps its timer.
    clearTimeout(state.timer);
    // A tab in the background refreshes less often.
    state.timer = setTimeout(() => refresh(false), document.hidden ? REFRESH_MS * 5 : REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("job-close").addEventListener("click", () => go({ job: null }));
    $("page-previous").addEventListener("click",
      () => go({ offset: Math.max(0, state.offset - PAGE_SIZE) }));
    $("page-next").addEventListener("click", () => go({ offset: state.offset + PAGE_SIZE }));
    $("name-search").addEventListener("submit", (event) => {
      event.preventDefault();
      go({ name: $("name-filter").value.trim(), offset: 0, job: null });
    });
    $("id-search").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("id-filter").value.trim();
      if (id) go({ job: id });
    });
    window.addEventListener("hashchange", () => { readHash(); refresh(true); });
    readHash();
    $("name-filter").value = state.name;
    refresh(true);
  });
})();
