"""promtool finds no problem in the exposition of the endpoint."""

from __future__ import annotations

import subprocess

import eddie_otel
from tests.support.helpers import record_every_metric, scrape


def test_promtool_finds_no_problem_in_the_exposition(port: int, promtool: str) -> None:
    eddie_otel.configure(port=port)
    record_every_metric()
    body, _ = scrape(port)
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == ""
    assert result.stderr.decode().strip() == ""
