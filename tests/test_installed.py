"""The package as installed: what the wheel must carry, and, in ``make wheel-test`` (which
sets ``JOBQUEUE_EXPECT_SITE_PACKAGES``), that it is the venv's copy under test and not
the source tree."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_import_jobqueue_leaves_the_lazy_modules_for_their_first_use() -> None:
    # A fresh interpreter: the test session has imported them all already.
    code = (
        "import sys, jobqueue; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jobqueue', 'croniter')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split("'")[1::2])
    assert "jobqueue.queue" in loaded
    left = {"jobqueue.flows", "jobqueue.job", "jobqueue.worker", "jobqueue.workers"}
    left |= {"jobqueue.scheduler", "croniter"}
    assert not loaded & left


def test_every_public_name_resolves_lazy_ones_included() -> None:
    from jobqueue import flows, job, workers

    for name in jobqueue.__all__:
        assert getattr(jobqueue, name) is not None, name
    assert set(jobqueue.__all__) <= set(dir(jobqueue))
    assert (jobqueue.Flow, jobqueue.chain, jobqueue.group) == (flows.Flow, flows.chain, flows.group)
    assert (jobqueue.Job, jobqueue.WorkerInfo) == (job.Job, workers.WorkerInfo)
    namespace: dict[str, object] = {}
    exec("from jobqueue import *", namespace)
    assert namespace["FlowTree"] is flows.FlowTree
    with pytest.raises(AttributeError, match="no attribute 'Flows'"):
        jobqueue.Flows  # noqa: B018
