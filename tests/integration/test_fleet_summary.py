"""The fleet's summary (`eddie-otel summary`, /metrics/summary?scope=fleet) from a real Prometheus and agents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import eddie_otel
from eddie_otel.cli import main
from eddie_otel.environment import EDDIE_OTEL_PROMETHEUS_URL
from eddie_otel.errors import ConfigurationError
from eddie_otel.ops import promql
from eddie_otel.ops.dashboard import build_dashboard, expand_variables, panel_queries
from eddie_otel.service import ServiceSettings, create_app
from eddie_otel.service.server import BackgroundServer
from eddie_otel.summary import WINDOWS
from tests.conftest import free_port
from tests.support.agents import Agent
from tests.support.prometheus_server import PrometheusServer

SPLITS = (1, 2, 3)


@pytest.fixture(scope="module")
def fleet(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, list[Agent]]]:
    """Three agent processes with known counts, and a Prometheus (job "eddie") that has scraped their second round."""
    workdir = tmp_path_factory.mktemp("fleet")
    agents: list[Agent] = []
    server = None
    try:
        agents = [Agent(splits, workdir) for splits in SPLITS]
        # A down target as well: it must be listed, and count for nothing.
        down = "127.0.0.1:1"
        server = PrometheusServer(prometheus_binary, workdir / "prometheus", [a.address for a in agents] + [down])
        server.wait_until(lambda: len(server.query("target_info")) == len(agents), 30, "agents not scraped")
        for agent in agents:
            agent.go()
        server.wait_until(
            lambda: [v["value"][1] for v in server.query("sum(task_success_total)")] == [str(2 * 9 * len(agents))],
            30,
            "the workload was not scraped",
        )
        yield server, agents
    finally:
        if server is not None:
            server.stop()
        for agent in agents:
            agent.stop()


def summary(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    status = main(["summary", *args])
    out, err = capsys.readouterr()
    return status, json.loads(out) if status == 0 else None, err


def test_totals_are_exact_sums_over_every_live_instance(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, agents = fleet
    status, result, _ = summary(capsys, "--prometheus-url", server.url, "--job", "eddie")
    assert status == 0
    n = len(agents)
    assert result["source"] == "prometheus"
    assert set(result) == {
        "generated_at",
        "totals",
        "agents",
        "latency",
        "windows",
        "indicators",
        "instances",
        "source",
    }
    assert result["generated_at"].endswith("Z")
    totals = result["totals"]
    assert totals["task_split"] == sum(SPLITS)
    assert totals["task_split_chunks"] == 3 * sum(SPLITS)
    assert totals["task_success"] == 2 * 9 * n
    assert totals["task_failure"] == 2 * n
    assert totals["timeout_events"] == 2 * n
    assert totals["merge_chunks_combined"] == 2 * 10 * n
    assert totals["merge_deduplication"] == 2 * n
    assert totals["fallback_depth_exceeded"] == 0
    assert result["agents"]["a"] == {"active": 0, "executed": 2 * 10 * n}
    assert result["agents"]["b"] == {"active": 0, "executed": 2 * 3 * n}
    assert result["latency"]["codegen"]["samples"] >= 10 * n


def test_instances_list_every_target_with_its_health_and_instance_id(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, agents = fleet
    _, result, _ = summary(capsys, "--prometheus-url", server.url, "--job", "eddie")
    instances = {item["instance"]: item for item in result["instances"]}
    assert set(instances) == {a.address for a in agents} | {"127.0.0.1:1"}
    assert instances["127.0.0.1:1"]["health"] == "down"
    assert instances["127.0.0.1:1"]["service_instance_id"] is None
    for agent in agents:
        assert instances[agent.address]["health"] == "up"
        assert instances[agent.address]["job"] == "eddie"


def test_indicators_are_the_dashboard_stat_queries_over_an_hour(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, _ = fleet
    _, result, _ = summary(capsys, "--prometheus-url", server.url, "--job", "eddie")
    indicators = {item["name"]: item for item in result["indicators"]}
    assert list(indicators) == list(promql.indicators("1h"))
    assert {item["window"] for item in indicators.values()} == {"1h"}
    # 9 successes in 10 per process: under the 95 % target.
    assert indicators["success_rate"]["value"] == pytest.approx(0.9, abs=0.02)
    assert indicators["success_rate"]["ok"] is False
    assert indicators["merge_efficiency"]["value"] == pytest.approx(0.9, abs=0.02)
    # Agent a executes 10 for b's 3.
    assert indicators["agent_balance_ratio"]["value"] == pytest.approx(10 / 3, rel=0.05)
    assert indicators["latency_p99_seconds"]["ok"] is True
    # The dashboard's stat panel, over the same hour, gives the same number.
    stats = dict(panel_queries(build_dashboard()))
    dashboard = server.query(expand_variables(stats["Success rate"], range_="1h"))
    assert float(dashboard[0]["value"][1]) == pytest.approx(indicators["success_rate"]["value"], abs=0.01)


def test_windows_have_counts_and_rates(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, agents = fleet
    _, result, _ = summary(capsys, "--prometheus-url", server.url)
    assert list(result["windows"]) == [name for name, _ in WINDOWS]
    for name, seconds in WINDOWS:
        window = result["windows"][name]
        assert window["seconds"] == window["covered_seconds"] == seconds
        # Both rounds, exactly: the first arrived with the series' first samples, counted from zero.
        assert window["counts"] == result["totals"]
        assert window["counts"]["task_success"] == 2 * 9 * len(agents)
        assert window["rates"]["task_success"] == pytest.approx(window["counts"]["task_success"] / seconds)


def test_unreachable_prometheus_and_bad_urls_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for url in ("http://127.0.0.1:1", "notaurl", "http://[::1"):
        status, _, err = summary(capsys, "--prometheus-url", url)
        assert status == 1, url
        assert err.count("\n") == 1, err
        assert err.startswith("eddie-otel summary: error: "), err
        assert "Traceback" not in err


def test_nothing_listening_names_the_url_without_the_query_or_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = free_port()
    status, _, err = summary(capsys, "--prometheus-url", f"http://admin:s3cret@127.0.0.1:{closed}/")
    assert status == 1
    assert err.startswith(f"eddie-otel summary: error: cannot reach Prometheus at http://127.0.0.1:{closed}: "), err
    assert err.count("\n") == 1, err
    for unwanted in ("s3cret", "admin", "/api/v1", "query", "%28", "target_info", "Traceback"):
        assert unwanted not in err, err


def test_a_job_prometheus_does_not_scrape_is_an_error_naming_the_jobs_it_does(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, _ = fleet
    status, _, err = summary(capsys, "--prometheus-url", server.url, "--job", "eddie-fleet")
    assert status == 1
    assert err == (
        f"eddie-otel summary: error: Prometheus at {server.url} has no target of job 'eddie-fleet'; "
        "the jobs it scrapes: eddie\n"
    )


def test_a_base_url_with_the_api_prefix_is_taken_without_it(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, _ = fleet
    for url in (server.url + "/api/v1", server.url + "/api/v1/"):
        status, result, err = summary(capsys, "--prometheus-url", url, "--job", "eddie")
        assert (status, err) == (0, ""), url
        assert result["totals"]["task_split"] == sum(SPLITS)


def test_service_answers_the_fleet_summary_when_prometheus_is_configured(
    port: int, fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, agents = fleet
    app = create_app(service=ServiceSettings.load({EDDIE_OTEL_PROMETHEUS_URL: server.url}))
    with BackgroundServer(app, "127.0.0.1", port) as running, httpx.Client(base_url=running.url) as client:
        fleet_answer = client.get("/metrics/summary", params={"scope": "fleet"})
        local_answer = client.get("/metrics/summary")
    assert fleet_answer.status_code == 200
    body = fleet_answer.json()
    assert body["source"] == "prometheus"
    assert body["totals"]["task_split"] == sum(SPLITS)
    assert {item["instance"] for item in body["instances"]} >= {a.address for a in agents}
    assert local_answer.status_code == 200
    assert "source" not in local_answer.json()


def test_fleet_scope_without_prometheus_is_a_400_and_unreachable_a_502(port: int) -> None:
    free = free_port()
    for settings, status, words in (
        (ServiceSettings.load({}), 400, EDDIE_OTEL_PROMETHEUS_URL),
        (ServiceSettings.load({EDDIE_OTEL_PROMETHEUS_URL: f"http://127.0.0.1:{free}"}), 502, "cannot reach"),
    ):
        app = create_app(service=settings)
        with BackgroundServer(app, "127.0.0.1", port) as running, httpx.Client(base_url=running.url) as client:
            answer = client.get("/metrics/summary", params={"scope": "fleet"})
            wrong = client.get("/metrics/summary", params={"scope": "galaxy"})
        assert answer.status_code == status
        detail = answer.json()["detail"]
        assert words in detail
        assert "\n" not in detail
        assert answer.json()["errors"][0]["field"] == "scope"
        # FastAPI's own refusal of a value outside the declared enum.
        assert wrong.status_code == 422
        eddie_otel.reset()
        port = free_port()


def test_a_bad_prometheus_url_in_the_environment_names_the_variable() -> None:
    for raw in ("notaurl", "http://[::1"):
        with pytest.raises(ConfigurationError, match=EDDIE_OTEL_PROMETHEUS_URL):
            ServiceSettings.load({EDDIE_OTEL_PROMETHEUS_URL: raw})
