"""Running `eddie-otel doctor` in a test and reading what it printed."""

from __future__ import annotations

import pytest

from eddie_otel.cli import main


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Run `eddie-otel doctor ARGS`: its exit status and the lines it printed."""
    status = main(["doctor", *args])
    return status, capsys.readouterr().out.splitlines()
