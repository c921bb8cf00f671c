"""The package as installed: what the wheel must carry, and, in ``make wheel-test`` (which
sets ``JOBQUEUE_EXPECT_SITE_PACKAGES``), that it is the venv's copy under test and not
the source tree."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import jobqueue
from jobqueue import _native

PACKAGE = Path(jobqueue.__file__).resolve().parent


def test_the_package_under_test_is_the_installed_one() -> None:
    expected = os.environ.get("JOBQUEUE_EXPECT_SITE_PACKAGES")
    if expected:
        site = Path(expected).resolve()
        assert PACKAGE == site / "jobqueue", f"jobqueue imported from {PACKAGE}, not {site}"
        assert Path(_native.__file__).resolve().parent == site / "jobqueue"
        assert not (PACKAGE.parent / "Cargo.toml").exists()
    else:  # a checkout: maturin develop puts the native module into python/jobqueue
        assert Path(_native.__file__).resolve().parent == PACKAGE


def test_typing_files_and_native_module_are_shipped() -> None:
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_native.pyi").is_file()
    assert "abi3" in Path(_native.__file__).name
    # The Lua scripts are compiled into the native module: none is read from disk.
    assert not list(PACKAGE.rglob("*.lua"))


def test_entry_points_are_registered() -> None:
    dist = importlib.metadata.distribution("jobqueue")
    points = {(ep.group, ep.name): ep.value for ep in dist.entry_points}
    assert points[("console_scripts", "jobqueue")] == "jobqueue.cli:main"
    assert points[("pytest11", "jobqueue")] == "jobqueue.testing_pytest"
