"""The pytest plugin (``jobqueue.testing_pytest``, loaded through the ``pytest11`` entry
point): a user's test file, with no conftest of ours, gets ``redis_server``, ``redis_url``
and ``queue`` and runs a processor against a real redis-server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_TESTS = """
import pytest

from jobqueue import Job, JobQueue, JobStatus
from jobqueue.testing import RedisServer, redis_command


async def double(job: Job[int]) -> int:
    return job.data * 2


@pytest.mark.asyncio
async def test_a_processor_runs_on_the_fixture_queue(queue: JobQueue) -> None:
    queue.process("double", double)
    await queue.start_worker()
    job_id = await queue.add_job("double", 21)
    info = await queue.wait_for(job_id, timeout=10_000)
    assert info.status == JobStatus.COMPLETED and info.return_value == 42


@pytest.mark.asyncio
async def test_each_test_starts_from_an_empty_redis(queue: JobQueue, redis_url: str) -> None:
    assert (await queue.get_stats()).waiting == 0
    await queue.add_job("left-behind", 1)
    assert (await queue.get_stats()).waiting == 1


def test_the_server_is_shared_and_real(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_url == redis_server.url
    assert redis_command(redis_server.port, "PING") == "PONG"
    assert redis_command(redis_server.port, "DBSIZE") == 0
"""


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_user_test_file_gets_the_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout


def test_the_plugin_can_be_turned_off(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    result = run_pytest(tmp_path, "-p", "no:jobqueue")
    assert result.returncode != 0
    assert "fixture 'queue' not found" in result.stdout, result.stdout
