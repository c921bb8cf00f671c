"""examples/django_project with Django's own test runner (``manage.py test signups``)
against the suite's real redis-server: views through the blocking facade, the
``runworker`` management command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django")

PROJECT = Path(__file__).resolve().parents[1] / "examples" / "django_project"


def test_the_django_projects_own_tests_pass(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "test", "signups", "-v", "2"],
        cwd=PROJECT,
        env={**os.environ, "JOBQUEUE_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Ran 3 tests" in output and "\nOK" in output, output
    assert re.search(r"test_the_worker_runs_the_jobs_and_stops_on_sigterm \(.*\) \.\.\. ok", output)
