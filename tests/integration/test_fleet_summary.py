"""The fleet's summary (`eddie-otel summary`, /metrics/summary?scope=fleet) from a real Prometheus and agents."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import eddie_otel
from eddie_otel.catalogue import DURATION_BUCKETS
from eddie_otel.cli import main
from eddie_otel.environment import EDDIE_OTEL_PROMETHEUS_URL
from eddie_otel.errors import ConfigurationError
from eddie_otel.ops import promql, recommend
from eddie_otel.ops.dashboard import build_dashboard, expand_variables, panel_queries
from eddie_otel.ops.prometheus_api import PrometheusAPI
from eddie_otel.service import ServiceSettings, create_app
from eddie_otel.service.server import BackgroundServer
from eddie_otel.summary import WINDOWS
from eddie_otel.timeouts import NOT_ENOUGH_DATA, TOO_LOOSE, TOO_TIGHT
from tests.conftest import free_port
from tests.support.agents import Agent, ScriptedAgent
from tests.support.helpers import NOTHING_SPLIT
from tests.support.prometheus_server import PrometheusServer, promtool_expressions

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
        "fallback",
        "latency",
        "timeouts",
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
    agents = result["agents"]
    assert set(agents) == {"a", "b"}
    # No agent said its capacity: no saturation either.
    assert {key: agents["a"][key] for key in ("active", "executed", "capacity", "saturation")} == {
        "active": 0,
        "executed": 2 * 10 * n,
        "capacity": None,
        "saturation": None,
    }
    assert {key: agents["b"][key] for key in ("active", "executed", "capacity", "saturation")} == {
        "active": 0,
        "executed": 2 * 3 * n,
        "capacity": None,
        "saturation": None,
    }
    assert result["latency"]["codegen"]["samples"] >= 10 * n
    # Splits outside a task split no task: nothing rescued, nothing failed.
    assert result["fallback"] == NOTHING_SPLIT


def test_last_seen_is_the_latest_any_process_reports(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, agents = fleet
    _, result, _ = summary(capsys, "--prometheus-url", server.url, "--job", "eddie")
    own = [httpx.get(f"{agent.url}/metrics/summary", timeout=10).json() for agent in agents]
    for name in ("a", "b"):
        assert result["agents"][name]["last_seen"] == max(process["agents"][name]["last_seen"] for process in own)


def test_without_the_recording_rule_a_stage_has_no_fleet_recommendation(
    capsys: pytest.CaptureFixture[str], fleet: tuple[PrometheusServer, list[Agent]]
) -> None:
    server, agents = fleet
    _, result, _ = summary(capsys, "--prometheus-url", server.url, "--job", "eddie")
    n = len(agents)
    # 2 rounds of 10 codegen tasks and 1 timeout per process; no timeout set; this Prometheus loads no rule.
    assert result["timeouts"] == {
        "codegen": {
            "timeout_seconds": None,
            "recommended_seconds": None,
            "samples": 2 * 10 * n,
            "p99": result["latency"]["codegen"]["p99"],
            "hit_share": pytest.approx(2 * n / (2 * 10 * n)),
            "reason": TOO_TIGHT,
        }
    }


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


# Two processes that split tasks (rescued or failed), say their capacity, hold a task running, set
# timeouts and record tasks of known durations; each round (at start, then on "go") records it all.
_VALUED = """
import sys, threading, eddie_otel
port, capacity, timeout, rescued, failed, idle = (int(arg) for arg in sys.argv[1:])
eddie_otel.configure(service_name="eddie-agent", port=port)
eddie_otel.set_agent_capacity(agent="a", slots=capacity)
if idle:
    eddie_otel.set_agent_capacity(agent="idle", slots=idle)
eddie_otel.set_timeout(stage="codegen", seconds=timeout)
eddie_otel.set_timeout(stage="deploy", seconds=60)
release = threading.Event()


@eddie_otel.task(stage="hold", agent="a")
def hold():
    release.wait()


threading.Thread(target=hold, daemon=True).start()


@eddie_otel.chunk(agent="b")
def rescue_chunk():
    eddie_otel.record_usage(agent="b", model="m", input_tokens=100, output_tokens=10, cost_usd=0.25)


@eddie_otel.task(stage="rescue", agent="b")
def split_task(fail):
    assert eddie_otel.record_split(agent="b", chunks=2, depth=1)
    eddie_otel.record_chunk(agent="b", duration_seconds=1.5)
    rescue_chunk()
    if fail:
        raise ValueError("still too big")


def workload():
    # codegen: 30 tasks of 3 s, 2 of them failed, and 3 timeouts; deploy: 30 tasks of 0.3 s.
    for number in range(30):
        eddie_otel.record_task(stage="codegen", duration_seconds=3.0, success=number >= 2, reason="error", agent="a")
        eddie_otel.record_task(stage="deploy", duration_seconds=0.3)
    for _ in range(3):
        eddie_otel.record_timeout(agent="a", stage="codegen", reason="deadline")
    for number in range(rescued + failed):
        try:
            split_task(number >= rescued)
        except ValueError:
            pass


workload()
print("ready", flush=True)
for line in sys.stdin:
    workload()
    print("done", flush=True)
"""
# Per process: capacity of agent "a", codegen timeout, split tasks rescued and failed, capacity of agent "idle".
_PROCESSES = ((4, 10, 3, 1, 0), (6, 12, 2, 2, 3))
_ROUNDS = 2
_STAGE_DURATIONS = {"codegen": 3.0, "deploy": 0.3}


def _recording_rule_file(directory: Path) -> Path:
    """A rule file with the fleet's recommendation only (`recommend.recording_rules()`)."""
    rules = [{"record": rule.record, "expr": rule.expr} for rule in recommend.recording_rules()]
    path = directory / "eddie-recommendation.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "eddie-recommendation", "rules": rules}]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def valued(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Any]]]:
    """Prometheus (with the recommendation rule) over the two processes of `_PROCESSES` after their second round,
    and each process's own summary, read once Prometheus has scraped that round."""
    workdir = tmp_path_factory.mktemp("valued")
    agents: list[ScriptedAgent] = []
    server = None
    try:
        agents = [ScriptedAgent(_VALUED, [str(arg) for arg in args], workdir) for args in _PROCESSES]
        server = PrometheusServer(
            prometheus_binary,
            workdir / "prometheus",
            [agent.address for agent in agents],
            rule_files=[_recording_rule_file(workdir)],
        )
        server.wait_until(lambda: len(server.query("target_info")) == len(agents), 30, "agents not scraped")
        for agent in agents:
            agent.go()
        split_tasks = _ROUNDS * sum(rescued + failed for _, _, rescued, failed, _ in _PROCESSES)
        server.wait_until(
            lambda: [v["value"][1] for v in server.query("sum(task_fallback_total)")] == [str(split_tasks)],
            30,
            "the second round was not scraped",
        )
        server.wait_until(
            lambda: len(server.query(f"{recommend.RECORD} > 0")) == len(_STAGE_DURATIONS) + 1,
            30,
            "the recommendation rule has no value for every stage",
        )
        own = [httpx.get(f"{agent.url}/metrics/summary", timeout=10).json() for agent in agents]
        yield server.url, own
    finally:
        if server is not None:
            server.stop()
        for agent in agents:
            agent.stop()


def _fleet(capsys: pytest.CaptureFixture[str], url: str) -> Any:
    status, result, err = summary(capsys, "--prometheus-url", url, "--job", "eddie")
    assert (status, err) == (0, "")
    return result


def _bucket_p99(duration: float) -> float:
    """histogram_quantile(0.99) of durations all equal to `duration`: interpolated within its bucket."""
    index = bisect.bisect_left(DURATION_BUCKETS, duration)
    lower, upper = DURATION_BUCKETS[index - 1], DURATION_BUCKETS[index]
    return lower + (upper - lower) * 0.99


def test_fleet_fallback_is_the_sum_of_the_processes_own(
    capsys: pytest.CaptureFixture[str], valued: tuple[str, list[Any]]
) -> None:
    url, own = valued
    fallback = _fleet(capsys, url)["fallback"]
    summed = {key: sum(process["fallback"][key] for process in own) for key in ("split_tasks", "rescued", "failed")}
    assert summed == {
        "split_tasks": _ROUNDS * sum(rescued + failed for _, _, rescued, failed, _ in _PROCESSES),
        "rescued": _ROUNDS * sum(rescued for _, _, rescued, _, _ in _PROCESSES),
        "failed": _ROUNDS * sum(failed for _, _, _, failed, _ in _PROCESSES),
    }
    assert {key: fallback[key] for key in summed} == summed
    assert fallback["rescue_ratio"] == summed["rescued"] / summed["split_tasks"]
    # Each split task's chunks: one recorded as 1.5 s, one run (a few microseconds) that used $0.25.
    assert fallback["cost_usd"] == pytest.approx(sum(process["fallback"]["cost_usd"] for process in own), rel=1e-12)
    assert fallback["cost_usd"] == pytest.approx(0.25 * summed["split_tasks"], rel=1e-12)
    chunk_seconds = sum(process["fallback"]["chunk_seconds"] for process in own)
    assert fallback["chunk_seconds"] == pytest.approx(chunk_seconds, rel=1e-12)
    assert chunk_seconds >= 1.5 * summed["split_tasks"]


def test_fleet_agents_have_the_summed_capacity_its_saturation_and_the_latest_sight(
    capsys: pytest.CaptureFixture[str], valued: tuple[str, list[Any]]
) -> None:
    url, own = valued
    agents = _fleet(capsys, url)["agents"]
    assert set(agents) == {"a", "b", "idle"} == set().union(*(process["agents"] for process in own))
    for name, load in agents.items():
        mine = [process["agents"][name] for process in own if name in process["agents"]]
        capacities = [entry["capacity"] for entry in mine if entry["capacity"] is not None]
        capacity = sum(capacities) if capacities else None
        active = sum(entry["active"] for entry in mine)
        assert load == {
            "active": active,
            "executed": sum(entry["executed"] for entry in mine),
            "capacity": capacity,
            "saturation": None if capacity is None else active / capacity,
            "last_seen": max(entry["last_seen"] for entry in mine),
        }, name
    # Known: each process holds one task running on "a"; "b" never said its capacity.
    assert agents["a"]["capacity"] == sum(capacity for capacity, *_ in _PROCESSES)
    assert agents["a"]["saturation"] == len(_PROCESSES) / agents["a"]["capacity"]
    assert (agents["b"]["capacity"], agents["b"]["saturation"]) == (None, None)
    assert (agents["idle"]["capacity"], agents["idle"]["saturation"]) == (3, 0)


def test_fleet_timeouts_judge_each_stage_over_the_hour_with_the_recording_rule(
    capsys: pytest.CaptureFixture[str], valued: tuple[str, list[Any]]
) -> None:
    url, own = valued
    result = _fleet(capsys, url)
    timeouts = result["timeouts"]
    # The stages the processes list (a timeout set, or successful tasks); "hold" never finished.
    assert set(timeouts) == set().union(*(process["timeouts"] for process in own)) == {"codegen", "deploy", "rescue"}
    for stage, entry in timeouts.items():
        mine = [process["timeouts"][stage] for process in own]
        finished = [process["latency"][stage]["samples"] for process in own]
        hits = sum(share["hit_share"] * count for share, count in zip(mine, finished, strict=True))
        in_use = [item["timeout_seconds"] for item in mine if item["timeout_seconds"] is not None]
        assert entry["samples"] == sum(finished), stage
        assert isinstance(entry["samples"], int)
        assert entry["hit_share"] == pytest.approx(hits / sum(finished), abs=1e-12), stage
        assert entry["timeout_seconds"] == (max(in_use) if in_use else None), stage
        assert entry["p99"] == result["latency"][stage]["p99"], stage
    codegen, deploy, rescue = timeouts["codegen"], timeouts["deploy"], timeouts["rescue"]
    # codegen: 3 timeouts for 30 tasks per round, over 5 %; 3 s tasks, in the (2.5, 5] bucket.
    assert codegen["timeout_seconds"] == max(timeout for _, timeout, *_ in _PROCESSES)
    assert codegen["hit_share"] == pytest.approx(3 / 30, abs=1e-12)
    assert codegen["p99"] == pytest.approx(_bucket_p99(_STAGE_DURATIONS["codegen"]), rel=1e-12)
    assert codegen["recommended_seconds"] == pytest.approx(recommend.MARGIN * codegen["p99"], rel=1e-9)
    assert codegen["reason"] == TOO_TIGHT
    # deploy: no timeout hit, a p99 below a third of its 60 s.
    assert (deploy["timeout_seconds"], deploy["hit_share"]) == (60, 0)
    assert deploy["p99"] == pytest.approx(_bucket_p99(_STAGE_DURATIONS["deploy"]), rel=1e-12)
    assert deploy["recommended_seconds"] == pytest.approx(recommend.MARGIN * deploy["p99"], rel=1e-9)
    assert deploy["reason"] == TOO_LOOSE
    # rescue: too few tasks to judge, no timeout set: the rule has a value, but the summary gives no
    # number beside "not enough data".
    assert rescue["samples"] < recommend.MIN_TASKS
    assert rescue["timeout_seconds"] is None
    rule = PrometheusAPI(url).query(f'{recommend.RECORD}{{stage="rescue"}}')
    assert len(rule) == 1
    assert rescue["recommended_seconds"] is None
    assert rescue["reason"] == NOT_ENOUGH_DATA


def test_hit_share_is_zero_without_timeouts_and_absent_without_finished_tasks(promtool: str, tmp_path: Path) -> None:
    # Every minute from 0 to 10 min, counted over the last 5: a new series counts from zero.
    series = {
        'task_success_total{instance="i", stage="clean"}': "0+2x10",
        'task_success_total{instance="i", stage="tight"}': "0+9x10",
        'task_failure_total{instance="i", stage="tight", reason="timeout"}': "0+1x10",
        'timeout_events_total{instance="i", agent="a", stage="tight", reason="deadline"}': "0+1x10",
        # Timeouts of a stage that finished no task: no share.
        'timeout_events_total{instance="i", agent="a", stage="idle", reason="deadline"}': "0+1x10",
        # Appears at 7 min with 3 successes and 1 failure, 2 timeouts.
        'task_success_total{instance="new", stage="late"}': "_x7 3x3",
        'task_failure_total{instance="new", stage="late", reason="timeout"}': "_x7 1x3",
        'timeout_events_total{instance="new", agent="a", stage="late", reason="deadline"}': "_x7 2x3",
    }
    promtool_expressions(
        promtool,
        tmp_path / "hit-share-test.yml",
        series,
        [
            {
                "expr": promql.hit_share("5m"),
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": '{stage="clean"}', "value": 0},
                    {"labels": '{stage="tight"}', "value": 5 / 50},
                    {"labels": '{stage="late"}', "value": 2 / 4},
                ],
            }
        ],
    )
