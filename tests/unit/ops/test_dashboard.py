"""The Grafana dashboard: current, complete, one datasource variable, indicator thresholds, balanced queries,
anomaly bands.

Grafana itself cannot be installed here: the provisioning files are checked against the
schema Grafana documents for them (apiVersion 1, datasources, providers of type file), and the
anomaly bands' field overrides against a stand-in of its time-series field-config schema (below).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.catalogue import METRICS, Kind
from eddie_otel.ops import anomaly
from eddie_otel.ops.assets import DASHBOARD, PROVISIONING
from eddie_otel.ops.dashboard import (
    DATASOURCE,
    WEEK_OF_HISTORY,
    build_dashboard,
    expand_variables,
    needs_history,
    panel_ids,
    panel_queries,
    render_dashboard,
)
from eddie_otel.ops.dashboard.panels import BAND, BAND_LOW, anomaly_queries
from eddie_otel.ops.thresholds import Thresholds

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The committed dashboard JSON, parsed."""
    loaded: dict[str, Any] = json.loads((ROOT / DASHBOARD).read_text(encoding="utf-8"))
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


# The anomaly signals' own queries and band edges (each signal drawn as is, or as 1 - it): they read the job
# over a fixed 5 minutes, as the rules do, not the panel's other variables or Grafana's interval.
ANOMALY_EXPRS = {
    query.expr
    for signal in anomaly.SIGNALS
    for complement in (False, True)
    for query in anomaly_queries(signal, "", complement=complement)
}


def test_committed_dashboard_equals_a_fresh_generation(dashboard: dict[str, Any]) -> None:
    assert (ROOT / DASHBOARD).read_text(encoding="utf-8") == render_dashboard()
    assert dashboard == build_dashboard()


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "eddie-distributed-fallback"
    assert dashboard["title"] == "Eddie · distributed fallback"
    assert dashboard["id"] is None


def test_datasource_is_a_prometheus_variable_used_by_every_panel_and_target(dashboard: dict[str, Any]) -> None:
    variables = dashboard["templating"]["list"]
    assert (variables[0]["name"], variables[0]["type"]) == ("datasource", "datasource")
    assert variables[0]["query"] == "prometheus"
    assert [(v["name"], v["type"], v["query"]) for v in variables if v["type"] == "datasource"] == [
        ("datasource", "datasource", "prometheus"),
        ("traces", "datasource", "tempo"),
    ]
    assert DATASOURCE == {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_job_instance_agent_stage_are_multi_value_query_variables_with_all(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "query"}
    assert list(variables) == ["job", "instance", "agent", "stage"]
    assert {name: v["definition"] for name, v in variables.items()} == {
        "job": "label_values(target_info, job)",
        "instance": 'label_values(target_info{job=~"$job"}, instance)',
        "agent": 'label_values(agent_tasks_executed_total{job=~"$job", instance=~"$instance"}, agent)',
        "stage": 'label_values(task_execution_seconds_count{job=~"$job", instance=~"$instance"}, stage)',
    }
    for name, variable in variables.items():
        assert (variable["type"], variable["multi"], variable["includeAll"], variable["allValue"]) == (
            "query",
            True,
            True,
            ".*",
        ), name
        assert variable["datasource"] == DATASOURCE, name
        assert variable["query"]["query"] == variable["definition"], name


def _labels_of(metric_name: str) -> tuple[str, ...]:
    for metric in METRICS:
        if metric_name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") == metric.prometheus_name:
            return metric.labels
    raise AssertionError(f"{metric_name} is not in the catalogue")


def test_every_series_selector_matches_job_and_instance_and_the_variables_of_its_labels(
    dashboard: dict[str, Any],
) -> None:
    names = "|".join(metric.prometheus_name for metric in METRICS)
    for title, expr in panel_queries(dashboard):
        selectors = re.findall(rf"\b((?:{names})(?:_bucket|_count|_sum)?)(\{{[^}}]*\}})?", expr)
        assert selectors, title
        for name, matchers in selectors:
            if expr in ANOMALY_EXPRS:
                # What EddieAnomaly reads: the whole job (test_anomaly_lines_read_the_job_over_the_rules_window).
                assert matchers == '{job=~"$job"}', f"{title}: {name}{matchers}"
                continue
            wanted = ["job", "instance", *(label for label in ("agent", "stage") if label in _labels_of(name))]
            for label in wanted:
                assert f'{label}=~"${label}"' in matchers, f"{title}: {name}{matchers}"


def test_cpu_panel_says_cores_and_shows_cores(dashboard: dict[str, Any]) -> None:
    [panel] = [panel for panel in _panels(dashboard) if panel["title"].startswith("Container CPU limit")]
    assert "cores" in panel["title"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "suffix: cores"
    [target] = panel["targets"]
    assert target["expr"].endswith(" / 1000")


def test_at_least_twelve_panels_with_unique_ids_on_a_non_overlapping_grid(dashboard: dict[str, Any]) -> None:
    assert len(_panels(dashboard)) == 42
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
        # Every rate() and increase() sits directly inside a sum: correct across instances and label values;
        # so does every count of `increase_from_zero`, whose increase() is its fallback for a reset.
        for match in re.finditer(r"\b(rate|increase)\(|\({3}last_over_time\(", expr):
            before = expr[: match.start()]
            if re.search(r"resets\([^()]+\) > 0 or $", before):
                continue
            assert re.search(r"sum(?: by \([a-z, ]+\) )?\($", before), f"{title}: {expr}"
        # The error-budget row's windows are the objective's period and the burn-rate alerts' windows.
        fixed = title.endswith((": burn rate", "(30d)")) or expr in ANOMALY_EXPRS
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


def test_expand_variables_replaces_the_range_in_seconds() -> None:
    expr = "sum(x[$__range]) * 3600 / $__range_s"
    assert expand_variables(expr) == "sum(x[1h]) * 3600 / 3600"
    assert expand_variables(expr, range_="90m") == "sum(x[90m]) * 3600 / 5400"


def test_the_stat_panels_count_what_happened_over_the_range(dashboard: dict[str, Any]) -> None:
    stats = [panel for panel in dashboard["panels"] if panel.get("type") == "stat"][:5]
    assert [panel["title"] for panel in stats] == [
        "Success rate",
        "Latency p99",
        "Timeouts per hour",
        "Merge efficiency",
        "Agent balance",
    ]
    for panel in stats:
        expr = panel["targets"][0]["expr"]
        # Counted from zero for a series new in the range (promql.increase_from_zero), never rate().
        assert "rate(" not in expr, panel["title"]
        assert "[5m] offset $__range)" in expr, panel["title"]


def test_expand_variables_sets_every_template_variable_to_all() -> None:
    expr = 'sum(rate(x{job=~"$job", instance=~"$instance", agent=~"$agent", stage=~"$stage"}[$__range]))'
    assert expand_variables(expr) == 'sum(rate(x{job=~".*", instance=~".*", agent=~".*", stage=~".*"}[1h]))'


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


def test_latency_panels_show_exemplars_linked_to_the_trace_data_source(dashboard: dict[str, Any]) -> None:
    latency = {panel["title"]: panel for panel in _panels(dashboard) if "execution time" in panel["title"]}
    assert set(latency) == {"Task execution time by stage", "Chunk execution time by agent"}
    for panel in latency.values():
        assert all(target["exemplar"] for target in panel["targets"]), panel["title"]
        (link,) = panel["fieldConfig"]["defaults"]["links"]
        assert "${traces}" in link["url"]
        assert "${__data.fields.trace_id}" in link["url"]
    others = [panel for panel in _panels(dashboard) if panel["title"] not in latency]
    assert not any(target.get("exemplar") for panel in others for target in panel["targets"])


# A stand-in for the part of Grafana's time-series field-config schema the bands use (Grafana cannot be
# installed here): the matcher ids Grafana's field overrides accept, and per property id the shape of its value.
_OVERRIDE_MATCHERS = ("byName", "byRegexp", "byType", "byFrameRefID")
_OVERRIDE_PROPERTIES: dict[str, Callable[[Any], bool]] = {
    "color": lambda v: v.get("mode") == "fixed" and isinstance(v.get("fixedColor"), str),
    "custom.lineStyle": lambda v: (
        v.get("fill") in ("dash", "dot")
        and isinstance(v.get("dash"), list)
        and all(isinstance(n, int) and n > 0 for n in v["dash"])
    ),
    "custom.lineWidth": lambda v: isinstance(v, int) and 0 <= v <= 10,
    "custom.fillOpacity": lambda v: isinstance(v, int) and 0 <= v <= 100,
    "custom.fillBelowTo": lambda v: isinstance(v, str) and bool(v),
    "custom.hideFrom": lambda v: (
        set(v) == {"legend", "tooltip", "viz"} and all(isinstance(b, bool) for b in v.values())
    ),
}


def _band_panels(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {panel["title"]: panel for panel in _panels(dashboard) if panel["fieldConfig"]["overrides"]}


def test_each_anomaly_signal_has_its_band_on_the_panel_its_alert_links_to(dashboard: dict[str, Any]) -> None:
    bands = _band_panels(dashboard)
    assert sorted(bands) == sorted(signal.panel for signal in anomaly.SIGNALS)
    assert sorted(bands) == [
        "Success rate by stage",
        "Task execution time by stage",
        "Task splits by agent",
        "Timeout events by agent and stage",
    ]
    for signal in anomaly.SIGNALS:
        panel = bands[signal.panel]
        assert panel["type"] == "timeseries"
        assert panel_ids(dashboard)[signal.panel] == panel["id"]
        by_legend = {target.get("legendFormat"): target["expr"] for target in panel["targets"]}
        upper, lower = (f'{anomaly.record_name(signal, part)}{{job=~"$job"}}' for part in ("upper", "lower"))
        top, bottom = by_legend[BAND], by_legend[BAND_LOW]
        if signal.name == "failure_ratio":
            # The panel shows success: 1 - the failure ratio, whose upper edge is the success rate's lower one.
            assert (top, bottom) == (f"1 - min({lower})", f"1 - max({upper})")
        elif signal.additive:
            assert (top, bottom) == (f"sum({upper})", f"sum({lower})")
        else:
            assert (top, bottom) == (f"max({upper})", f"min({lower})")
        # The value the band is compared with: the signal the rule records, for the selected jobs.
        [line] = [expr for legend, expr in by_legend.items() if legend and legend.endswith("(5m)")]
        assert signal.query({"job": "$job"}) in line
        assert "eddie:anomaly" not in line
        assert "expected range" in panel["description"]


def test_band_overrides_fit_the_stand_in_of_grafanas_field_config_schema(dashboard: dict[str, Any]) -> None:
    for title, panel in _band_panels(dashboard).items():
        legends = {target.get("legendFormat") for target in panel["targets"]}
        styles: dict[str, dict[str, Any]] = {}
        for override in panel["fieldConfig"]["overrides"]:
            assert set(override) == {"matcher", "properties"}, title
            assert override["matcher"]["id"] in _OVERRIDE_MATCHERS, title
            name = override["matcher"]["options"]
            assert name in legends, f"{title}: the override names no series: {name}"
            for prop in override["properties"]:
                assert set(prop) == {"id", "value"}, title
                assert _OVERRIDE_PROPERTIES[prop["id"]](prop["value"]), f"{title}: {prop}"
            styles[name] = {prop["id"]: prop["value"] for prop in override["properties"]}
        assert set(styles) == {BAND, BAND_LOW}, title
        # The upper edge shaded down to the lower one; both thin, dashed and one colour; the lower out of the legend.
        assert styles[BAND]["custom.fillBelowTo"] == BAND_LOW
        assert styles[BAND]["custom.fillOpacity"] > 0 == styles[BAND_LOW]["custom.fillOpacity"]
        for edge in styles.values():
            assert edge["custom.lineWidth"] == 1
            assert edge["custom.lineStyle"]["fill"] == "dash"
        assert styles[BAND]["color"] == styles[BAND_LOW]["color"]
        assert styles[BAND_LOW]["custom.hideFrom"] == {"legend": True, "tooltip": False, "viz": False}
    others = [panel for panel in _panels(dashboard) if panel["title"] not in _band_panels(dashboard)]
    assert all(panel["fieldConfig"]["overrides"] == [] for panel in others)


def test_only_the_band_edges_need_a_week_of_history(dashboard: dict[str, Any]) -> None:
    expected = tuple(
        f"eddie:anomaly:{signal}:{part}"
        for signal in ("timeouts", "failure_ratio", "latency_p99", "splits")
        for part in ("upper", "lower")
    )
    assert expected == WEEK_OF_HISTORY
    edges = [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel["targets"]
        if target.get("legendFormat") in (BAND, BAND_LOW)
    ]
    assert len(edges) == 8
    everything = panel_queries(dashboard, history=True)
    assert [query for query in everything if needs_history(query[1])] == edges
    assert panel_queries(dashboard) == [query for query in everything if query not in edges]


def test_anomaly_lines_read_the_job_over_the_rules_window(dashboard: dict[str, Any]) -> None:
    lines = [expr for _, expr in panel_queries(dashboard) if expr in ANOMALY_EXPRS]
    assert len(lines) == 4
    assert anomaly.WINDOW == "5m"
    for expr in lines:
        assert "[5m]" in expr
        assert "$__rate_interval" not in expr
        assert not re.search(r'\b(instance|agent|stage)=~"\$', expr)


def test_panel_ids_prefer_a_time_series_to_a_stat_of_the_same_title(dashboard: dict[str, Any]) -> None:
    ids = panel_ids(dashboard)
    for title in ("Agent balance", "Merge efficiency"):
        [timeseries] = [p["id"] for p in _panels(dashboard) if p["title"] == title and p["type"] == "timeseries"]
        assert ids[title] == timeseries
    assert ids["Success rate"] == next(p["id"] for p in _panels(dashboard) if p["title"] == "Success rate")
    assert not any(p["type"] == "row" and ids.get(p["title"]) == p["id"] for p in dashboard["panels"])
