"""The version has one home (Cargo.toml): the installed metadata, ``jobqueue.__version__``,
``jobqueue --version`` and the CHANGELOG agree on it."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jobqueue
from jobqueue import _native

CHECKOUT = Path(__file__).resolve().parents[1]


def test_version_is_the_installed_distributions() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", jobqueue.__version__)
    assert jobqueue.__version__ == importlib.metadata.version("jobqueue")


def test_cli_prints_the_version() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from jobqueue.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"jobqueue {jobqueue.__version__}"


def test_console_script_prints_the_version() -> None:
    script = Path(sys.executable).with_name("jobqueue")
    command = str(script) if script.exists() else shutil.which("jobqueue")
    assert command, "the jobqueue console script is installed next to the interpreter"
    out = subprocess.run([command, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"jobqueue {jobqueue.__version__}"


def test_cargo_toml_and_changelog_name_the_version() -> None:
    if not (CHECKOUT / "Cargo.toml").exists():
        pytest.skip("not run from a checkout (the installed-wheel run has no Cargo.toml)")
    cargo = (CHECKOUT / "Cargo.toml").read_text()
    assert re.search(rf'^version = "{re.escape(jobqueue.__version__)}"$', cargo, re.M)
    changelog = (CHECKOUT / "CHANGELOG.md").read_text()
    assert f"\n## {jobqueue.__version__}\n" in changelog
    assert f"**Layout**: {_native.LAYOUT_VERSION}" in changelog
