"""Building eddie-otel's distributions and installing them into fresh venvs, for the packaging and install tests.

`shared` makes a directory once per test session, even with pytest-xdist: the first
worker that needs it makes it under a file lock, the others wait and reuse it.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(
    command: list[str], cwd: Path, timeout: float = 300, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `command`; fail the test with its output unless it exits 0."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def build_command(outdir: Path, *targets: str) -> list[str]:
    """`python -m build` of the checkout into `outdir` (targets: "--sdist", "--wheel"; none: both, wheel from sdist)."""
    command = [sys.executable, "-m", "build", *targets, "--outdir", str(outdir), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:
        # The build backend is already here: no isolated build environment to download.
        command.insert(3, "--no-isolation")
    return command


def shared(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The directory `name`, made by `make(directory)` once per session across xdist workers."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Each worker's base is a child of the session's: the parent is common to all of them.
        base = base.parent
    directory = base / name
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = directory / ".done"
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            make(directory)
            done.touch()
    return directory


def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the checkout, built once per session."""
    root = shared(tmp_path_factory, "wheel", lambda directory: run(build_command(directory, "--wheel"), cwd=directory))
    [built] = root.glob("eddie_otel-*.whl")
    return built


def clean_environment() -> dict[str, str]:
    """This process's environment without what would make another venv's Python see this one's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def new_venv(path: Path) -> Path:
    """A new venv at `path` (with pip, without the system site-packages); its bin directory."""
    run([sys.executable, "-m", "venv", str(path)], cwd=path.parent, env=clean_environment())
    return path / "bin"
