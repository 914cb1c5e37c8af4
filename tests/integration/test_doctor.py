"""`eddie-otel doctor` against a real metrics endpoint and a real Prometheus server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import eddie_otel
from eddie_otel.cli import main
from tests.conftest import free_port
from tests.support.grafana_standin import ADMIN, GrafanaStandIn
from tests.support.prometheus_server import PrometheusServer


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(["doctor", *args])
    return status, capsys.readouterr().out.splitlines()


@pytest.fixture
def metrics_port() -> int:
    port = free_port()
    eddie_otel.configure(port=port)
    return port


@pytest.fixture
def prometheus(prometheus_binary: str, tmp_path: Path, metrics_port: int) -> Iterator[PrometheusServer]:
    server = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [f"127.0.0.1:{metrics_port}"])
    yield server
    server.stop()


def test_every_step_passes_against_real_prometheus(
    capsys: pytest.CaptureFixture[str], metrics_port: int, prometheus: PrometheusServer
) -> None:
    eddie_otel.record_split(agent="a", chunks=2, depth=1)
    prometheus.wait_until(lambda: bool(prometheus.query("task_split_total")), 30, "no scrape")
    status, lines = doctor(
        capsys, "--metrics-url", f"http://127.0.0.1:{metrics_port}", "--prometheus-url", prometheus.url
    )
    assert status == 0, lines
    assert lines[0].startswith("[1/3] ok   metrics endpoint answers")
    assert (
        lines[1]
        == f"[2/3] ok   Prometheus scrapes the endpoint: http://127.0.0.1:{metrics_port}/metrics/prometheus is up"
    )
    assert lines[2] == "[3/3] ok   Prometheus returns the series: 1 task_split_total series"
    assert lines[3] == "all checks passed"


def test_prometheus_without_the_target_fails_the_second_step(
    capsys: pytest.CaptureFixture[str], prometheus_binary: str, tmp_path: Path, metrics_port: int
) -> None:
    eddie_otel.record_split(agent="a", chunks=2, depth=1)
    other = PrometheusServer(prometheus_binary, tmp_path / "other", ["127.0.0.1:1"], metrics_path="/metrics")
    try:
        status, lines = doctor(
            capsys, "--metrics-url", f"http://127.0.0.1:{metrics_port}", "--prometheus-url", other.url
        )
    finally:
        other.stop()
    assert status == 1
    assert lines[1] == "[2/3] FAIL Prometheus scrapes the endpoint"
    assert "has no target scraping /metrics/prometheus" in lines[2]
    assert len(lines) == 3


def test_a_target_that_is_down_fails_the_second_step_with_prometheus_error(
    capsys: pytest.CaptureFixture[str], prometheus_binary: str, tmp_path: Path
) -> None:
    # The endpoint answers for the first step, but Prometheus is pointed at a dead port.
    port = free_port()
    eddie_otel.configure(port=port)
    eddie_otel.record_split(agent="a", chunks=2, depth=1)
    dead = free_port()
    server = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [f"127.0.0.1:{dead}"])
    try:
        server.wait_until(
            lambda: any(t["health"] == "down" for t in server.api("targets")["activeTargets"]), 30, "no scrape"
        )
        status, lines = doctor(capsys, "--metrics-url", f"http://127.0.0.1:{port}", "--prometheus-url", server.url)
    finally:
        server.stop()
    assert status == 1
    assert lines[1] == "[2/3] FAIL Prometheus scrapes the endpoint"
    assert f"http://127.0.0.1:{dead}/metrics/prometheus" in lines[2]
    assert "connection refused" in lines[2]


# Grafana cannot be installed here: the Grafana step runs against the stand-in of its
# HTTP API that the grafana-setup tests use, which answers as Grafana 11 does.


def test_the_grafana_step_finds_the_dashboard_grafana_setup_made(
    capsys: pytest.CaptureFixture[str], metrics_port: int, prometheus: PrometheusServer
) -> None:
    eddie_otel.record_split(agent="a", chunks=2, depth=1)
    prometheus.wait_until(lambda: bool(prometheus.query("task_split_total")), 30, "no scrape")
    with GrafanaStandIn({"token-1": ADMIN}) as grafana:
        common = ["--metrics-url", f"http://127.0.0.1:{metrics_port}", "--prometheus-url", prometheus.url]
        status, lines = doctor(capsys, *common, "--grafana-url", grafana.url, "--api-key", "token-1")
        assert status == 1
        assert lines[3] == "[4/4] FAIL Grafana has the dashboard"
        assert f"eddie-otel grafana-setup --grafana-url {grafana.url}" in lines[4]

        assert main(["grafana-setup", "--grafana-url", grafana.url, "--api-key", "token-1"]) == 0
        capsys.readouterr()
        status, lines = doctor(capsys, *common, "--grafana-url", grafana.url, "--api-key", "token-1")
        assert status == 0, lines
        assert lines[3].startswith("[4/4] ok   Grafana has the dashboard: dashboard ")
        assert lines[3].endswith(f"{grafana.url}/d/eddie-distributed-fallback")

        status, lines = doctor(capsys, *common, "--grafana-url", grafana.url, "--api-key", "not-the-token-42")
        assert status == 1
        assert "refused the request (HTTP 401)" in lines[4]
        assert "not-the-token-42" not in "\n".join(lines)
