"""How the scripts run: as one Redis Function library called by FCALL, or by EVALSHA on a
server without functions and on one that refuses to load the library (docs/redis-layout.md)."""

from __future__ import annotations

import asyncio
import re

from jobqueue import Backoff, JobQueue, JobStatus
from jobqueue.job import Job
from jobqueue.testing import RedisServer, redis_command


def script_calls(port: int) -> dict[str, int]:
    """Calls per script command so far (INFO commandstats): fcall, evalsha, eval."""
    info = redis_command(port, "INFO", "commandstats")
    assert isinstance(info, bytes)
    counts = dict(re.findall(r"cmdstat_(fcall|evalsha|eval):calls=(\d+)", info.decode()))
    return {name: int(counts.get(name, 0)) for name in ("fcall", "evalsha", "eval")}


async def run_a_job_that_retries_once(url: str) -> JobQueue:
    """Add a job whose first attempt fails, process it to completion; the open queue."""
    queue = JobQueue("library", redis=url)
    attempts = 0

    @queue.processor("flaky")
    async def flaky(job: Job[int]) -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first attempt fails")
        return job.data * 2

    await queue.start_worker()
    job_id = await queue.add_job("flaky", 21, attempts=2, backoff=Backoff.fixed(10))
    info = await queue.wait_for(job_id, timeout=10_000)
    assert (info.status, info.return_value, info.attempts) == (JobStatus.COMPLETED, 42, 2)
    return queue


async def test_scripts_run_as_one_function_library() -> None:
    with RedisServer() as server:
        queue = await run_a_job_that_retries_once(server.url)
        try:
            assert (await queue.health_check()).scripts == "FCALL"
        finally:
            await queue.close()
        calls = script_calls(server.port)
        assert calls["fcall"] > 0 and calls["evalsha"] == 0, calls
        listed = redis_command(server.port, "FUNCTION", "LIST", "LIBRARYNAME", "jobqueue_*")
        assert isinstance(listed, list) and len(listed) == 1


async def test_a_server_without_functions_runs_every_script_by_evalsha() -> None:
    # FUNCTION renamed away answers "unknown command", as on Redis < 7.0.
    with RedisServer(extra_args=["--rename-command", "FUNCTION", ""]) as server:
        queue = await run_a_job_that_retries_once(server.url)
        try:
            report = await queue.health_check()
            assert report.scripts == "EVALSHA (the server has no Redis Functions (Redis < 7.0))"
            assert report.healthy and not any("EVALSHA" in w for w in report.warnings)
            assert (await queue.get_stats()).completed == 1
        finally:
            await queue.close()
        calls = script_calls(server.port)
        assert calls["fcall"] == 0 and calls["evalsha"] > 0, calls


async def test_a_refused_library_load_falls_back_to_evalsha_and_is_reported() -> None:
    with RedisServer() as server:
        # A user whose ACL forbids FUNCTION (a managed Redis may do that) but not scripts.
        reply = redis_command(
            server.port, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-function"
        )
        assert reply == "OK"
        url = f"redis://app:pw@127.0.0.1:{server.port}"
        queue = await run_a_job_that_retries_once(url)
        try:
            report = await queue.health_check()
            assert report.scripts is not None
            assert report.scripts.startswith("EVALSHA (FUNCTION LOAD failed: "), report.scripts
            assert report.healthy  # slower, not unsafe
            assert any(w.startswith("scripts run by EVALSHA: ") for w in report.warnings)
        finally:
            await queue.close()
        calls = script_calls(server.port)
        assert calls["fcall"] == 0 and calls["evalsha"] > 0, calls


async def test_a_flushed_library_is_loaded_again_by_the_next_call() -> None:
    with RedisServer() as server:
        queue = await run_a_job_that_retries_once(server.url)
        try:
            assert redis_command(server.port, "FUNCTION", "FLUSH") == "OK"
            job_id = await queue.add_job("flaky", 5)
            info = await asyncio.wait_for(queue.wait_for(job_id), 10)
            assert info.return_value == 10
            assert (await queue.health_check()).scripts == "FCALL"
        finally:
            await queue.close()
        listed = redis_command(server.port, "FUNCTION", "LIST", "LIBRARYNAME", "jobqueue_*")
        assert isinstance(listed, list) and len(listed) == 1
