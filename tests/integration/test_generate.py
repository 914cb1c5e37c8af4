"""`python -m eddie_otel.ops.generate` runs as a module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_module_runs_with_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eddie_otel.ops.generate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m eddie_otel.ops.generate [-h] [--check] [--root ROOT]")
