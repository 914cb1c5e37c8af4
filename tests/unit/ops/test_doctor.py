"""`eddie-otel doctor` against a real metrics endpoint, without Prometheus: the first steps and their messages."""

from __future__ import annotations

import pytest

import eddie_otel
from tests.conftest import free_port
from tests.support.doctor import doctor


def test_nothing_listening_fails_the_first_step_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    status, lines = doctor(
        capsys, "--metrics-url", f"http://127.0.0.1:{port}", "--prometheus-url", "http://127.0.0.1:1"
    )
    assert status == 1
    assert lines[0] == "[1/4] FAIL metrics endpoint answers"
    assert f"cannot reach http://127.0.0.1:{port}/metrics/prometheus" in lines[1]
    assert "eddie-otel serve" in lines[1]
    assert len(lines) == 2


def test_an_endpoint_without_splits_says_so(capsys: pytest.CaptureFixture[str], metrics_port: int) -> None:
    eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    status, lines = doctor(capsys, "--metrics-url", f"http://127.0.0.1:{metrics_port}")
    # No split yet is a note, not a failure; the status is 1 only because no Prometheus answers.
    assert status == 1
    assert lines[0].startswith("[1/4] ok   metrics endpoint answers: ")
    assert "note: nothing has recorded a split yet" in lines[0]
