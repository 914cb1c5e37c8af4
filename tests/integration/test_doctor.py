"""`eddie-otel doctor` against a real metrics endpoint and a real Prometheus server."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import eddie_otel
from eddie_otel.cli import main
from eddie_otel.ops.doctor import stale_discovery_files
from tests.conftest import free_port
from tests.support.agents import Agent
from tests.support.doctor import doctor
from tests.support.grafana_standin import ADMIN, GrafanaStandIn
from tests.support.prometheus_server import PrometheusServer


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
    target = f"http://127.0.0.1:{metrics_port}/metrics/prometheus"
    assert lines[0].startswith("[1/4] ok   metrics endpoint answers")
    assert lines[1] == f"[2/4] ok   Prometheus scrapes the endpoint: {target} is up (job eddie)"
    assert lines[2].startswith("[3/4] ok   every target of the job is up, once: job 'eddie': 1 target up")
    assert lines[2].endswith(f"({target} is up)")
    assert lines[3] == "[4/4] ok   Prometheus returns the series: 1 task_split_total series"
    assert lines[4] == "all checks passed"


def test_the_url_the_demo_prints_is_accepted(
    capsys: pytest.CaptureFixture[str], metrics_port: int, prometheus: PrometheusServer
) -> None:
    eddie_otel.record_split(agent="a", chunks=2, depth=1)
    prometheus.wait_until(lambda: bool(prometheus.query("task_split_total")), 30, "no scrape")
    url = f"http://127.0.0.1:{metrics_port}/metrics/prometheus"
    status, lines = doctor(capsys, "--metrics-url", url, "--prometheus-url", prometheus.url)
    assert status == 0, lines
    assert lines[0] == f"[1/4] ok   metrics endpoint answers: {url} answers with task_split_total"


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
    assert lines[1] == "[2/4] FAIL Prometheus scrapes the endpoint"
    assert "has no target scraping /metrics/prometheus" in lines[2]
    assert len(lines) == 3


def test_prometheus_scraping_another_port_fails_the_second_step_naming_the_mismatch(
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
    assert lines[1] == "[2/4] FAIL Prometheus scrapes the endpoint"
    assert f"does not scrape http://127.0.0.1:{port}/metrics/prometheus" in lines[2]
    assert f"it scrapes http://127.0.0.1:{dead}/metrics/prometheus is down" in lines[2]
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
        assert lines[4] == "[5/5] FAIL Grafana has the dashboard"
        assert f"eddie-otel grafana-setup --grafana-url {grafana.url}" in lines[5]

        assert main(["grafana-setup", "--grafana-url", grafana.url, "--api-key", "token-1"]) == 0
        capsys.readouterr()
        status, lines = doctor(capsys, *common, "--grafana-url", grafana.url, "--api-key", "token-1")
        assert status == 0, lines
        assert lines[4].startswith("[5/5] ok   Grafana has the dashboard: dashboard ")
        assert lines[4].endswith(f"{grafana.url}/d/eddie-distributed-fallback")

        status, lines = doctor(capsys, *common, "--grafana-url", grafana.url, "--api-key", "not-the-token-42")
        assert status == 1
        assert "refused the request (HTTP 401)" in lines[5]
        assert "not-the-token-42" not in "\n".join(lines)


def test_a_fleet_with_a_down_target_a_shared_instance_id_and_a_stale_file_fails_the_third_step(
    capsys: pytest.CaptureFixture[str], prometheus_binary: str, tmp_path: Path
) -> None:
    # The second agent is scraped at two addresses: one process, so one service_instance_id on two targets.
    twin_env = {**os.environ, "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=twin"}
    agents = [Agent(1, tmp_path), Agent(1, tmp_path, twin_env)]
    twins = [agents[1].address, f"localhost:{agents[1].port}"]
    dead = f"127.0.0.1:{free_port()}"
    discovery = tmp_path / "discovery"
    discovery.mkdir()
    (discovery / "eddie-agent-live.json").write_text(json.dumps([{"targets": [agents[0].address], "labels": {}}]))
    (discovery / "eddie-agent-gone.json").write_text(json.dumps([{"targets": [dead], "labels": {}}]))
    targets = [agents[0].address, *twins, dead]
    server = PrometheusServer(prometheus_binary, tmp_path / "prometheus", targets)
    try:
        server.wait_until(lambda: len(server.query("target_info")) == 3, 30, "agents not scraped")
        server.wait_until(lambda: bool(server.query("up == 0")), 30, "the dead target is not down yet")
        [twin_info] = server.query(f'target_info{{instance="{agents[1].address}"}}')
        twin_id = twin_info["metric"]["service_instance_id"]
        status, lines = doctor(
            capsys,
            "--metrics-url",
            agents[0].url + "/metrics/prometheus",
            "--prometheus-url",
            server.url,
            "--discovery-dir",
            str(discovery),
        )
    finally:
        server.stop()
        for agent in agents:
            agent.stop()
    assert status == 1, lines
    assert lines[1].startswith("[2/4] ok   Prometheus scrapes the endpoint")
    assert lines[2] == "[3/4] FAIL every target of the job is up, once"
    detail = lines[3]
    assert "job 'eddie' has 4 targets" in detail
    for address in (agents[0].address, *twins):
        assert f"http://{address}/metrics/prometheus is up" in detail
    assert f"down: http://{dead}/metrics/prometheus is down" in detail
    assert f"service_instance_id {twin_id} on 2 targets ({', '.join(sorted(twins))})" in detail
    assert f"stale discovery file {discovery / 'eddie-agent-gone.json'} names {dead}, but it does not answer" in detail
    assert "eddie-agent-live.json" not in detail


@pytest.mark.parametrize("url", ["notaurl", "http://[::1", "ftp://example.com"])
def test_a_bad_url_is_a_one_line_error(capsys: pytest.CaptureFixture[str], url: str) -> None:
    status = main(["doctor", "--metrics-url", url])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.startswith("eddie-otel doctor: error: --metrics-url ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_discovery_file_left_by_a_killed_process_is_reported_as_gone(tmp_path: Path) -> None:
    discovery = tmp_path / "discovery"
    agent = Agent(1, tmp_path, {**os.environ, "EDDIE_OTEL_DISCOVERY_DIR": str(discovery)})
    [left] = list(discovery.glob("*.json"))
    agent.process.send_signal(signal.SIGKILL)
    agent.process.wait(timeout=10)
    agent.stop()
    assert left.exists()
    assert stale_discovery_files(discovery) == [(left, agent.address, "its process is gone")]
