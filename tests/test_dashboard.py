"""The Grafana dashboard: current, complete, one datasource variable, indicator thresholds, and queries that
give the right numbers when Prometheus' own engine evaluates them (through `promtool test rules`).

Grafana itself cannot be installed here: the provisioning files are checked against the
schema Grafana documents for them (apiVersion 1, datasources, providers of type file).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.catalogue import METRICS, Kind
from eddie_otel.ops.alerts import Thresholds
from eddie_otel.ops.assets import DASHBOARD, PROVISIONING
from eddie_otel.ops.dashboard import (
    DATASOURCE,
    build_dashboard,
    expand_variables,
    panel_queries,
    render_dashboard,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The committed dashboard JSON, parsed."""
    loaded: dict[str, Any] = json.loads((ROOT / DASHBOARD).read_text(encoding="utf-8"))
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_committed_dashboard_equals_a_fresh_generation(dashboard: dict[str, Any]) -> None:
    assert (ROOT / DASHBOARD).read_text(encoding="utf-8") == render_dashboard()
    assert dashboard == build_dashboard()


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "eddie-distributed-fallback"
    assert dashboard["title"] == "Eddie · distributed fallback"
    assert dashboard["id"] is None


def test_datasource_is_a_prometheus_variable_used_by_every_panel_and_target(dashboard: dict[str, Any]) -> None:
    variables = dashboard["templating"]["list"]
    assert [(v["name"], v["type"], v["query"]) for v in variables] == [("datasource", "datasource", "prometheus")]
    assert DATASOURCE == {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_at_least_twelve_panels_with_unique_ids_on_a_non_overlapping_grid(dashboard: dict[str, Any]) -> None:
    assert len(_panels(dashboard)) == 26
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered


def test_every_catalogue_metric_is_queried(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(expr for _, expr in panel_queries(dashboard))
    for metric in METRICS:
        suffix = "_bucket" if metric.kind is Kind.HISTOGRAM else ""
        assert re.search(rf"\b{metric.prometheus_name}{suffix}\b", exprs), metric.prometheus_name


def test_indicator_row_has_five_stats_with_the_targets_as_thresholds(dashboard: dict[str, Any]) -> None:
    stats = [panel for panel in _panels(dashboard) if panel["type"] == "stat" and panel["gridPos"]["y"] == 1]
    summary = [
        (
            panel["title"],
            panel["fieldConfig"]["defaults"]["unit"],
            [(step["color"], step["value"]) for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]],
            panel["gridPos"]["y"],
        )
        for panel in stats
    ]
    assert summary == [
        ("Success rate", "percentunit", [("red", None), ("green", 0.95)], 1),
        ("Latency p99", "s", [("green", None), ("red", 60.0)], 1),
        ("Timeouts per hour", "short", [("green", None), ("red", 5.0)], 1),
        ("Merge efficiency", "percentunit", [("red", None), ("green", 0.9)], 1),
        ("Agent balance", "suffix:×", [("green", None), ("red", 2.0)], 1),
    ]
    for panel in stats:
        assert panel["fieldConfig"]["defaults"]["color"] == {"mode": "thresholds"}
        assert [(t["instant"], t["range"]) for t in panel["targets"]] == [(True, False)], panel["title"]


def test_indicator_thresholds_follow_the_thresholds_object() -> None:
    moved = Thresholds(success_rate=0.99, latency_p99_seconds=30.0)
    stats = {panel["title"]: panel for panel in _panels(build_dashboard(moved)) if panel["type"] == "stat"}
    assert stats["Success rate"]["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 0.99
    assert stats["Latency p99"]["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 30.0


def _balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in expr:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def test_queries_are_balanced_and_aggregate_before_quantiles_and_ratios(dashboard: dict[str, Any]) -> None:
    for title, expr in panel_queries(dashboard):
        assert _balanced(expr), title
        for match in re.finditer(r"histogram_quantile\(", expr):
            assert re.match(r"histogram_quantile\(0\.\d+, sum by \(le\b", expr[match.start() :]), title
        # Every rate() and increase() sits directly inside a sum: correct across instances and label values.
        for match in re.finditer(r"\b(rate|increase)\(", expr):
            assert re.search(r"sum(?: by \([a-z, ]+\) )?\($", expr[: match.start()]), f"{title}: {expr}"
        # The error-budget row's windows are the objective's period and the burn-rate alerts' windows.
        fixed = title.endswith((": burn rate", "(30d)"))
        assert "$__rate_interval" in expr or "$__range" in expr or "rate(" not in expr or fixed, title


def test_panel_queries_lists_every_target_of_nested_rows_too() -> None:
    collapsed = {
        "panels": [
            {"type": "row", "title": "r", "panels": [{"type": "stat", "title": "inner", "targets": [{"expr": "up"}]}]},
            {"type": "timeseries", "title": "outer", "targets": [{"expr": "a", "refId": "A"}, {"expr": "b"}]},
        ]
    }
    assert panel_queries(collapsed) == [("inner", "up"), ("outer", "a"), ("outer", "b")]


def test_expand_variables_replaces_grafana_intervals() -> None:
    expr = "sum(rate(x[$__rate_interval])) / sum(rate(y[$__range]))"
    assert expand_variables(expr) == "sum(rate(x[1m])) / sum(rate(y[1h]))"
    assert expand_variables(expr, rate_interval="30s", range_="6h") == "sum(rate(x[30s])) / sum(rate(y[6h]))"


# Series for the evaluation below: one sample a minute for an hour. Counters grow by
# 60·r a minute, i.e. a rate of exactly r per second over any window, so the
# expected values are exact. Several series carry an `instance` label to show the
# queries aggregate across instances.
_SERIES: dict[str, str] = {
    'task_split_total{agent="a", instance="i1"}': "0+60x60",
    'task_split_total{agent="b", instance="i1"}': "0+60x60",
    'task_split_total{agent="b", instance="i2"}': "0+60x60",
    'task_split_chunks_total{agent="a"}': "0+180x60",
    'task_split_chunks_total{agent="b"}': "0+240x60",
    'timeout_events_total{agent="a", stage="codegen", reason="deadline"}': "0+60x60",
    'timeout_events_total{agent="a", stage="codegen", reason="oom"}': "0+60x60",
    'timeout_events_total{agent="b", stage="review", reason="deadline"}': "0+180x60",
    'fallback_depth_exceeded_total{agent="a"}': "0+1x60",
    # codegen: 100 tasks/s, 50 within 30 s, 98 within 60 s, all within 120 s.
    'task_execution_seconds_bucket{stage="codegen", le="30"}': "0+3000x60",
    'task_execution_seconds_bucket{stage="codegen", le="60"}': "0+5880x60",
    'task_execution_seconds_bucket{stage="codegen", le="120"}': "0+6000x60",
    'task_execution_seconds_bucket{stage="codegen", le="+Inf"}': "0+6000x60",
    'task_execution_seconds_sum{stage="codegen"}': "0+150000x60",
    'task_execution_seconds_count{stage="codegen"}': "0+6000x60",
    # Agent a's chunks like codegen's tasks; agent b's all within 30 s.
    'chunk_execution_seconds_bucket{agent="a", le="30"}': "0+3000x60",
    'chunk_execution_seconds_bucket{agent="a", le="60"}': "0+5880x60",
    'chunk_execution_seconds_bucket{agent="a", le="120"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="a", le="+Inf"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="30"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="60"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="120"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="+Inf"}': "0+6000x60",
    # codegen: 3 successes and 1 failure a second; review: only failures, no success series at all.
    'task_success_total{stage="codegen"}': "0+180x60",
    'task_failure_total{stage="codegen", reason="ValueError"}': "0+60x60",
    'task_failure_total{stage="review", reason="TimeoutError"}': "0+60x60",
    'agent_active_tasks{agent="a", instance="i1"}': "2x60",
    'agent_active_tasks{agent="a", instance="i2"}': "1x60",
    'agent_active_tasks{agent="b", instance="i1"}': "0x60",
    # a executes twice as much as b; idle executed 7 long ago and nothing since.
    'agent_tasks_executed_total{agent="a"}': "0+240x60",
    'agent_tasks_executed_total{agent="b"}': "0+120x60",
    'agent_tasks_executed_total{agent="idle"}': "7x60",
    # Two instances report the same limit of c1: a limit is not additive.
    'docker_container_cpu_limit{container="c1", instance="i1"}': "1500x60",
    'docker_container_cpu_limit{container="c1", instance="i2"}': "1500x60",
    'docker_container_cpu_limit{container="c2", instance="i1"}': "500x60",
    'docker_container_memory_limit_bytes{container="c1"}': "536870912x60",
    'docker_elastic_adjustment_total{container="c1", type="cpu_up"}': "0+1x60",
    'docker_elastic_adjustment_total{container="c1", type="memory_down"}': "0+2x60",
    # 10 chunk results combined and 1 duplicate removed a second.
    "merge_chunks_combined_total": "0+600x60",
    "merge_deduplication_total": "0+60x60",
}

# (panel title, {labels: value}) for every target in dashboard order, evaluated at the
# end of the hour with $__rate_interval = 5m and $__range = 1h.
_EXPECTED: list[tuple[str, dict[str, float]]] = [
    ("Success rate", {"{}": 0.6}),  # 3 / (3 + 2)
    ("Latency p99", {"{}": 90}),  # rank 99 of 100 falls halfway into (60, 120]
    ("Timeouts per hour", {"{}": 18000}),  # 5 a second
    ("Merge efficiency", {"{}": 0.9}),  # 1 - 1/10
    ("Agent balance", {"{}": 2}),  # 4 / 2, the idle agent left out
    ("Task splits by agent", {'{agent="a"}': 1, '{agent="b"}': 2}),
    ("Chunks created by agent", {'{agent="a"}': 3, '{agent="b"}': 4}),
    ("Chunks per split by agent", {'{agent="a"}': 3, '{agent="b"}': 2}),
    ("Timeout events by agent and stage", {'{agent="a", stage="codegen"}': 2, '{agent="b", stage="review"}': 3}),
    ("Fallback depth violations by agent", {'{agent="a"}': 5}),
    ("Task execution time by stage", {'{stage="codegen"}': 58.125}),  # p95: 30 + 30 · 45/48
    ("Task execution time by stage", {'{stage="codegen"}': 90}),
    ("Task execution time by stage", {'{stage="codegen"}': 25}),  # mean: 2500 / 100
    ("Chunk execution time by agent", {'{agent="a"}': 58.125, '{agent="b"}': 28.5}),  # b: 30 · 0.95
    ("Chunk execution time by agent", {'{agent="a"}': 90, '{agent="b"}': 29.7}),  # b: 30 · 0.99
    ("Task successes and failures by stage", {'{stage="codegen"}': 3}),
    (
        "Task successes and failures by stage",
        {'{stage="codegen", reason="ValueError"}': 1, '{stage="review", reason="TimeoutError"}': 1},
    ),
    ("Success rate by stage", {'{stage="codegen"}': 0.75, '{stage="review"}': 0}),
    ("Active tasks by agent", {'{agent="a"}': 3, '{agent="b"}': 0}),
    ("Tasks and chunks executed by agent", {'{agent="a"}': 4, '{agent="b"}': 2, '{agent="idle"}': 0}),
    ("Agent balance", {"{}": 2}),
    ("Container CPU limit", {'{container="c1"}': 1.5, '{container="c2"}': 0.5}),
    ("Container memory limit", {'{container="c1"}': 536870912}),
    (
        "Elastic adjustments by container and type",
        {'{container="c1", type="cpu_up"}': 5, '{container="c1", type="memory_down"}': 10},
    ),
    ("Chunk results combined and duplicates removed", {"{}": 10}),
    ("Chunk results combined and duplicates removed", {"{}": 1}),
    ("Merge efficiency", {"{}": 0.9}),
    # 2 failures in 5 finished tasks against a 5 % budget: 8x in every window, 7 budgets overspent.
    ("Task success: error budget left (30d)", {"{}": -7}),
    *[("Task success: burn rate", {"{}": 8})] * 4,
    # 2 % of tasks over 60 s against a 1 % budget: 2x, one budget overspent.
    ("Task latency: error budget left (30d)", {"{}": -1}),
    *[("Task latency: burn rate", {"{}": 2})] * 4,
]


def _rounded(title: str, expr: str) -> str:
    return f"round({expr}, 0.0001)" if title.startswith(("Task success:", "Task latency:")) else expr


def test_every_query_gives_the_expected_numbers_in_prometheus(
    dashboard: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    """promtool evaluates each panel query with Prometheus' engine: a parse error or a wrong value fails."""
    queries = panel_queries(dashboard)
    assert [title for title, _ in queries] == [title for title, _ in _EXPECTED]
    tests = [
        {
            # promtool compares exactly: the error-budget row divides by the budget, so round off float noise.
            "expr": _rounded(title, expand_variables(expr, rate_interval="5m", range_="1h")),
            "eval_time": "60m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in expected.items()],
        }
        for (title, expr), (_, expected) in zip(queries, _EXPECTED, strict=True)
    ]
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": values} for series, values in _SERIES.items()],
                "promql_expr_test": tests,
            }
        ],
    }
    test_file = tmp_path / "dashboard-queries-test.yml"
    test_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_grafana_datasource_provisioning() -> None:
    document = yaml.safe_load((ROOT / PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    assert document == {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": "prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": "http://prometheus:9090",
                "isDefault": True,
                "jsonData": {"timeInterval": "10s", "httpMethod": "POST"},
            }
        ],
    }


def test_grafana_dashboard_provisioning_loads_a_directory_of_json_files() -> None:
    document = yaml.safe_load((ROOT / PROVISIONING / "dashboards" / "eddie.yml").read_text(encoding="utf-8"))
    assert document["apiVersion"] == 1
    [provider] = document["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Eddie"
    assert provider["options"] == {"path": "/var/lib/grafana/dashboards", "foldersFromFilesStructure": False}
