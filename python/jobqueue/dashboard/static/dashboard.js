// The jobqueue dashboard's one script. The pages are rendered on the server; this sends
// the actions (POST with the page's CSRF token), keeps the page live (server-sent events
// from the queues' event streams, polling when they are not available) and shows times in
// the browser's time zone. It writes text only (textContent); a live update puts in place
// the server's own rendering of the same page.
"use strict";

(function () {
  const meta = (name) => document.querySelector(`meta[name="jobqueue-${name}"]`).content;
  const CSRF = meta("csrf");
  const REFRESH_MS = Number(meta("refresh-ms"));
  const EVENTS_URL = meta("events");
  // With live events the page still reloads now and then: pause, resume and schedules
  // changed by other processes write no event.
  const SLOW_POLL = 5;
  // Events come in bursts (a busy queue writes several a second): one reload per this
  // many ms at most.
  const EVENT_SETTLE_MS = 500;

  const state = { running: null, again: false, timer: null, live: false, source: null };

  function setStatus(text, isError) {
    const box = document.getElementById("connection");
    if (!box) return;
    box.textContent = text;
    box.className = isError ? "error" : "muted";
  }

  function show(text, isError) {
    const box = document.getElementById("message");
    box.textContent = text;
    box.className = isError ? "error" : "ok";
    box.hidden = !text;
  }

  function localTimes(root) {
    for (const node of root.querySelectorAll("time[datetime]")) {
      const moment = new Date(node.getAttribute("datetime"));
      if (!Number.isNaN(moment.getTime())) node.textContent = moment.toLocaleString();
    }
  }

  // Fetch this page again and put its live parts in place of the current ones.
  async function load() {
    const response = await fetch(location.href, {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" },
    });
    if (!response.ok && response.status !== 404) throw new Error(`HTTP ${response.status}`);
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const parts = [...document.querySelectorAll("[data-live]")];
    if (response.status === 404 || parts.length === 0) {
      // The job or queue is gone: show the server's page for that.
      const main = fresh.querySelector("main");
      if (main) document.querySelector("main").replaceWith(document.importNode(main, true));
    }
    for (const part of parts) {
      const name = part.getAttribute("data-live");
      const replacement = fresh.querySelector(`[data-live="${CSS.escape(name)}"]`);
      if (replacement) part.replaceWith(document.importNode(replacement, true));
    }
    const nav = fresh.getElementById("queues");
    if (nav) document.getElementById("queues").replaceWith(document.importNode(nav, true));
    localTimes(document);
  }

  // One load at a time; asked for meanwhile, one more runs after it.
  async function refresh() {
    if (state.running) {
      state.again = true;
      return state.running;
    }
    state.running = (async () => {
      do {
        state.again = false;
        try {
          await load();
          setStatus(`${state.live ? "live" : "polling"} · updated ${new Date().toLocaleTimeString()}`);
        } catch (error) {
          setStatus(`not updated: ${error.message}`, true);
        }
      } while (state.again);
    })();
    await state.running;
    state.running = null;
    schedule();
  }

  function schedule() {
    clearTimeout(state.timer);
    const every = state.live ? REFRESH_MS * SLOW_POLL : REFRESH_MS;
    state.timer = setTimeout(refresh, document.hidden ? every * 5 : every);
  }

  let settle = null;
  function soon() {
    if (settle) return;
    settle = setTimeout(() => { settle = null; refresh(); }, EVENT_SETTLE_MS);
  }

  function follow() {
    if (!EVENTS_URL || typeof EventSource === "undefined") {
      setStatus("polling");
      return;
    }
    const source = new EventSource(EVENTS_URL, { withCredentials: true });
    state.source = source;
    source.addEventListener("hello", () => {
      state.live = true;
      setStatus("live");
      schedule();
    });
    source.addEventListener("jobs", soon);
    source.addEventListener("reload", soon);
    source.addEventListener("error", () => {
      // The browser reconnects by itself (sending Last-Event-ID); until then, poll.
      state.live = false;
      setStatus("polling");
      schedule();
    });
  }

  async function act(button) {
    const label = button.getAttribute("data-action");
    const confirmText = button.getAttribute("data-confirm");
    if (confirmText && !window.confirm(confirmText)) return;
    button.disabled = true;
    try {
      const response = await fetch(button.getAttribute("data-url"), {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
      });
      const body = await response.json().catch(() => ({ error: response.statusText }));
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      const said = Object.entries(body).map(([key, value]) => `${key}: ${value}`).join(", ");
      show(`${label}: ${said}`, false);
      const then = button.getAttribute("data-then");
      if (then) {
        location.assign(then);
        return;
      }
    } catch (error) {
      show(`${label} failed: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
    await refresh();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-url]");
    if (!button) return;
    event.preventDefault();
    act(button);
  });

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    follow();
    schedule();
  });
})();
