"""promtool finds no problem in the exposition of the endpoint."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import eddie_otel
from tests.support.helpers import record_every_metric


def scrape(port: int, accept: str | None = None, encoding: str | None = None) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics/prometheus")
    if accept:
        request.add_header("Accept", accept)
    if encoding:
        request.add_header("Accept-Encoding", encoding)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read(), dict(response.headers)


def test_promtool_finds_no_problem_in_the_exposition(port: int, promtool: str) -> None:
    eddie_otel.configure(port=port)
    record_every_metric()
    body, _ = scrape(port)
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == ""
    assert result.stderr.decode().strip() == ""
