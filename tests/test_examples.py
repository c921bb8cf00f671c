"""Every example runs to the end against the test suite's redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(
    p
    for p in (Path(__file__).parent.parent / "examples").glob("*.py")
    if not p.stem.startswith("_")
)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example: Path, redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, example.name, "--demo"],
        cwd=example.parent,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
