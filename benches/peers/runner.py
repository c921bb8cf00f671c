"""One side of a benchmark step, run in the venv of the system under test.

    <python> benches/peers/runner.py SYSTEM ROLE 'JSON ARGS'

``benches/throughput.py`` starts this script; it never imports jobqueue itself, so it
also runs in a peer's own venv. It loads the adapter ``peer_<SYSTEM>.py`` from this
directory. An adapter has:

- ``DIST`` (distribution name), ``BULK`` (how ``add_many`` works), ``NOTES`` (settings),
  ``SYNC = True`` when its methods are plain functions rather than coroutines, and
  ``REDIS_MIN`` ("8.6") when it needs a newer redis-server than some;
- ``Client(url)`` with ``open()``, ``add(payload)``, ``add_many(payloads)``, ``close()``;
- optionally ``SyncClient(url)``, the same with plain (blocking) methods, safe to share
  between threads (the ``threads`` mode of ``enqueue``; a ``SYNC`` adapter's ``Client``
  serves as one);
- ``Worker(url, concurrency, handle)`` with ``setup()`` (before the clock starts),
  ``run()`` (consume jobs until ``stop()``; may also return at once if the library
  works in the background) and ``stop()``. Its processor for jobs named ``noop`` calls
  ``handle(payload)`` first thing, with the payload as enqueued.

Roles: ``check``, ``enqueue`` (timed here; modes ``single``: awaited adds one by one,
``bulk``: batches, ``concurrent``: awaited single adds from ``tasks`` concurrent asyncio
tasks, ``threads``: blocking single adds from ``tasks`` threads), ``fill``, ``produce``
(paced, for latency) and ``worker``. Results go to stdout as lines ``@@bench {json}``; anything
else a library prints is ignored. The worker role prints ``ready``, waits for a ``go``
line on stdin, starts the worker, prints ``done`` (with the time.time() of the last
handler call) once ``expect`` jobs have reached the handler, and stops on a ``stop`` line.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import signal
import statistics
import sys
import threading
import time
from importlib import metadata
from typing import Any

PREFIX = "@@bench "


def emit(**event: Any) -> None:
    sys.stdout.write(PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def busy(iterations: int) -> int:
    """Pure-Python CPU work: about 1 ms for the iteration count the harness calibrates."""
    total = 0
    for k in range(iterations):
        total += k * k
    return total


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Tally:
    """The handler every adapter's processor calls: counts jobs, records latency or burns
    CPU, and reports ``done`` when the expected number of jobs has arrived."""

    def __init__(self, mode: str, expect: int, cpu_iterations: int) -> None:
        self.mode = mode
        self.expect = expect
        self.cpu_iterations = cpu_iterations
        self.count = 0
        self.waits: list[float] = []

    def __call__(self, payload: dict[str, Any]) -> None:
        if self.mode == "latency":
            self.waits.append(time.time() - payload["t"])
        elif self.mode == "cpu":
            busy(self.cpu_iterations)
        self.count += 1
        if self.count == self.expect:
            self.report()

    def report(self) -> None:
        event: dict[str, Any] = {"event": "done", "at": time.time(), "jobs": self.count}
        if self.waits:
            ordered = sorted(w * 1000 for w in self.waits)
            event.update(
                p50_ms=percentile(ordered, 50),
                p99_ms=percentile(ordered, 99),
                max_ms=ordered[-1],
                mean_ms=statistics.fmean(ordered),
            )
        emit(**event)


def payloads(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"i": i, "s": "x" * 100} for i in range(start, stop)]


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


#: Adds before the clock starts in the concurrent modes, so that connections are open.
WARM_UP = 10


def enqueue_threads(adapter: Any, args: dict[str, Any]) -> None:
    """``jobs`` blocking single adds from ``tasks`` threads sharing one client."""
    client_class = getattr(adapter, "SyncClient", None)
    if client_class is None and getattr(adapter, "SYNC", False):
        client_class = adapter.Client
    if client_class is None:
        emit(event="result", unsupported="no blocking client")
        return
    client = client_class(args["url"])
    client.open()
    for i in range(WARM_UP):
        client.add({"i": -i, "s": "x" * 100})
    tasks, jobs = args["tasks"], args["jobs"]
    per_task = jobs // tasks
    start = threading.Barrier(tasks + 1)

    def produce(first: int) -> None:
        start.wait()
        for payload in payloads(first, first + per_task):
            client.add(payload)

    threads = [threading.Thread(target=produce, args=(t * per_task,)) for t in range(tasks)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    client.close()
    total = per_task * tasks
    emit(event="result", jobs=total, seconds=elapsed, rate=total / elapsed)


async def enqueue(adapter: Any, args: dict[str, Any]) -> None:
    if args["mode"] == "threads":
        enqueue_threads(adapter, args)
        return
    if args["mode"] == "concurrent" and getattr(adapter, "SYNC", False):
        emit(event="result", unsupported="a blocking client: no concurrent awaited adds")
        return
    client = adapter.Client(args["url"])
    await maybe_await(client.open())
    jobs, batch = args["jobs"], args.get("batch", 1)
    if args["mode"] == "concurrent":
        for i in range(WARM_UP):
            await maybe_await(client.add({"i": -i, "s": "x" * 100}))
    started = time.perf_counter()
    if args["mode"] == "concurrent":
        tasks = args["tasks"]
        per_task = jobs // tasks

        async def produce(first: int) -> None:
            for payload in payloads(first, first + per_task):
                await client.add(payload)

        await asyncio.gather(*(produce(t * per_task) for t in range(tasks)))
        jobs = per_task * tasks
    elif args["mode"] == "single":
        for payload in payloads(0, jobs):
            await maybe_await(client.add(payload))
    else:
        for start in range(0, jobs, batch):
            await maybe_await(client.add_many(payloads(start, min(jobs, start + batch))))
    elapsed = time.perf_counter() - started
    await maybe_await(client.close())
    emit(event="result", jobs=jobs, seconds=elapsed, rate=jobs / elapsed)


async def fill(adapter: Any, args: dict[str, Any]) -> None:
    await enqueue(adapter, {**args, "mode": "bulk"})


async def produce(adapter: Any, args: dict[str, Any]) -> None:
    """Adds ``rate`` jobs a second for ``seconds``, paced against the clock."""
    client = adapter.Client(args["url"])
    await maybe_await(client.open())
    rate, total = args["rate"], int(args["rate"] * args["seconds"])
    started = time.perf_counter()
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await maybe_await(client.add({"i": i, "t": time.time()}))
    elapsed = time.perf_counter() - started
    await maybe_await(client.close())
    emit(event="result", jobs=total, seconds=elapsed, rate=total / elapsed)


async def async_worker(adapter: Any, args: dict[str, Any]) -> None:
    tally = Tally(args["mode"], args["expect"], args.get("cpu_iterations", 0))
    worker = adapter.Worker(args["url"], args["concurrency"], tally)
    await worker.setup()
    loop = asyncio.get_running_loop()
    emit(event="ready")
    await loop.run_in_executor(None, sys.stdin.readline)  # go
    task = asyncio.ensure_future(worker.run())
    task.add_done_callback(
        lambda t: (
            None
            if t.cancelled() or t.exception() is None
            else emit(event="error", error=repr(t.exception()))
        )
    )
    await loop.run_in_executor(None, sys.stdin.readline)  # stop (or EOF)
    try:
        await asyncio.wait_for(worker.stop(), 10)
        await asyncio.wait_for(asyncio.shield(task), 5)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        task.cancel()
    except Exception as exc:  # a library that fails at shutdown: report, do not hang
        emit(event="stop-error", error=repr(exc))
    emit(event="stopped", jobs=tally.count)


def sync_worker(adapter: Any, args: dict[str, Any]) -> None:
    """For synchronous libraries (rq): the worker loop runs in the main thread; a
    ``stop`` line turns into a SIGTERM, the usual way to stop such a worker."""
    tally = Tally(args["mode"], args["expect"], args.get("cpu_iterations", 0))
    worker = adapter.Worker(args["url"], args["concurrency"], tally)
    worker.setup()
    emit(event="ready")
    sys.stdin.readline()  # go

    def wait_for_stop() -> None:
        sys.stdin.readline()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_stop, daemon=True).start()
    worker.run()
    emit(event="stopped", jobs=tally.count)


def main() -> None:
    system, role = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    try:
        adapter = importlib.import_module(f"peer_{system}")
    except Exception as exc:
        emit(event="unavailable", error=f"{type(exc).__name__}: {exc}")
        return
    if role == "check":
        emit(
            event="available",
            version=metadata.version(adapter.DIST),
            python=sys.version.split()[0],
            bulk=adapter.BULK,
            notes=adapter.NOTES,
            redis_min=getattr(adapter, "REDIS_MIN", None),
        )
        return
    if role == "worker":
        if getattr(adapter, "SYNC", False):
            sync_worker(adapter, args)
        else:
            asyncio.run(async_worker(adapter, args))
        return
    step = {"enqueue": enqueue, "fill": fill, "produce": produce}[role]
    asyncio.run(step(adapter, args))


if __name__ == "__main__":
    main()
