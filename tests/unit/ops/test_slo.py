"""The SLO burn-rate rules: promtool shows each alert firing just above its threshold and silent just below."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.objectives import OBJECTIVES, Objective
from eddie_otel.ops import slo
from eddie_otel.ops.alerts import rule_annotations
from eddie_otel.ops.assets import ALERT_RULES, asset_path
from eddie_otel.ops.links import Links
from eddie_otel.ops.sloexport import render_openslo, render_sloth

SUCCESS, LATENCY = OBJECTIVES
# 100 finished tasks a minute over 80 minutes; every window then sees the same ratio.
PER_MINUTE = 100
MINUTES = 80


def _series(objective: Objective, bad_per_100: float) -> list[dict[str, str]]:
    bad = bad_per_100 * PER_MINUTE / 100
    if objective.latency_seconds is None:
        return [
            {"series": 'task_success_total{job="eddie", stage="s"}', "values": f"0+{PER_MINUTE - bad:g}x{MINUTES}"},
            {"series": 'task_failure_total{job="eddie", stage="s", reason="r"}', "values": f"0+{bad:g}x{MINUTES}"},
        ]
    # The OpenTelemetry exporter writes le="60.0": the rules match it as well as le="60".
    return [
        {
            "series": 'task_execution_seconds_bucket{job="eddie", le="60.0"}',
            "values": f"0+{PER_MINUTE - bad:g}x{MINUTES}",
        },
        {"series": 'task_execution_seconds_count{job="eddie"}', "values": f"0+{PER_MINUTE}x{MINUTES}"},
    ]


def _expected(objective: Objective, ratio: float) -> list[dict[str, Any]]:
    alerts = []
    for rule in slo.burn_rate_rules((objective,)):
        pairs = [burn for burn in slo.BURN_RATES if burn.severity == rule.severity]
        if any(ratio > burn.factor * objective.error_budget for burn in pairs):
            annotations = rule_annotations(rule, Links())
            annotations["description"] = annotations["description"].replace(
                "{{ $value | humanizePercentage }}", f"{ratio * 100:.4g}%"
            )
            annotations["summary"] = annotations["summary"].replace("{{ $labels.job }}", "eddie")
            alerts.append({"exp_labels": {"severity": rule.severity, "job": "eddie"}, "exp_annotations": annotations})
    return alerts


# Bad tasks per 100, on both sides of each threshold: the budget times 14.4, 6, 3 and 1.
CASES = [
    (SUCCESS, [73, 71, 31, 29, 16, 14, 5.1, 4.9]),
    (LATENCY, [14.5, 14.3, 6.1, 5.9, 3.1, 2.9, 1.1, 0.9]),
]


def _tests() -> list[dict[str, Any]]:
    tests = []
    for objective, ratios in CASES:
        for per_100 in ratios:
            tests.append(
                {
                    "name": f"{objective.alert} at {per_100:g} % bad tasks",
                    "interval": "1m",
                    "input_series": _series(objective, per_100),
                    "alert_rule_test": [
                        {
                            "eval_time": f"{MINUTES}m",
                            "alertname": objective.alert,
                            "exp_alerts": _expected(objective, per_100 / 100),
                        }
                    ],
                }
            )
        tests.append(
            {
                "name": f"{objective.alert} stays silent without traffic",
                "interval": "1m",
                "input_series": [{"series": 'up{job="eddie"}', "values": f"1x{MINUTES}"}],
                "alert_rule_test": [{"eval_time": f"{MINUTES}m", "alertname": objective.alert, "exp_alerts": []}],
            }
        )
    return tests


def test_each_burn_rate_fires_just_above_its_threshold_and_not_below(promtool: str, tmp_path: Path) -> None:
    tests = _tests()
    # Each severity both fires and stays silent somewhere in the cases.
    for objective, _ in CASES:
        seen = {
            alert["exp_labels"]["severity"]
            for test in tests
            if test["name"].startswith(objective.alert)
            for alert in test["alert_rule_test"][0]["exp_alerts"]
        }
        assert seen == {"critical", "warning"}
    document = {"rule_files": [str(asset_path(ALERT_RULES))], "evaluation_interval": "1m", "tests": tests}
    test_file = tmp_path / "slo-test.yml"
    test_file.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_windows_and_burn_rates_follow_the_design() -> None:
    assert slo.WINDOWS == ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    assert [(b.severity, b.factor, b.long, b.short) for b in slo.BURN_RATES] == [
        ("critical", 14.4, "1h", "5m"),
        ("critical", 6.0, "6h", "30m"),
        ("warning", 3.0, "1d", "2h"),
        ("warning", 1.0, "3d", "6h"),
    ]
    assert (SUCCESS.objective, LATENCY.objective, LATENCY.latency_seconds) == (0.95, 0.99, 60.0)


def test_recordings_sum_across_instances_per_job() -> None:
    for recording in slo.recording_rules():
        assert "sum by (job) (rate(" in recording.expr
        assert "instance" not in recording.expr


def test_inline_replaces_every_recorded_series() -> None:
    for rule in slo.burn_rate_rules():
        assert "eddie:" not in slo.inline(rule.expr)


@pytest.mark.parametrize("render", [render_sloth, render_openslo])
def test_exports_hold_both_objectives(render: Any) -> None:
    documents = [doc for doc in yaml.safe_load_all(render()) if doc]
    text = render()
    assert "task-success" in text
    assert "task-latency" in text
    assert documents


def test_sloth_spec() -> None:
    spec = yaml.safe_load(render_sloth())
    assert spec["version"] == "prometheus/v1"
    assert [(s["name"], s["objective"]) for s in spec["slos"]] == [("task-success", 95.0), ("task-latency", 99.0)]
    assert all("{{.window}}" in s["sli"]["events"]["error_query"] for s in spec["slos"])


def test_openslo_documents() -> None:
    documents = list(yaml.safe_load_all(render_openslo()))
    assert [(d["apiVersion"], d["kind"], d["spec"]["objectives"][0]["target"]) for d in documents] == [
        ("openslo/v1", "SLO", 0.95),
        ("openslo/v1", "SLO", 0.99),
    ]
    assert all(d["spec"]["timeWindow"] == [{"duration": "30d", "isRolling": True}] for d in documents)


def test_shipped_alertmanager_config_passes_amtool(amtool: str) -> None:
    result = subprocess.run(
        [amtool, "check-config", str(asset_path("dashboards/alertmanager.yml"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(asset_path("dashboards/alertmanager.yml").read_text(encoding="utf-8"))
    assert config["route"]["group_by"] == ["alertname", "job"]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert "routing_key_file" in receivers["pagerduty-critical"]["pagerduty_configs"][0]
    assert "api_url_file" in receivers["slack-warning"]["slack_configs"][0]
