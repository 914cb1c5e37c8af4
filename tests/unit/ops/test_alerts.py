"""The Prometheus alert rules: the committed file is current, one group with every alert, the thresholds frozen."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.ops.alerts import GROUP, THRESHOLDS, all_rules, render_rules, rules
from eddie_otel.ops.anomaly import GROUP as ANOMALY
from eddie_otel.ops.assets import ALERT_RULES
from eddie_otel.ops.links import Links

BURN_RATE_ALERTS = [
    "EddieTaskSuccessBudgetBurn",
    "EddieTaskSuccessBudgetBurn",
    "EddieTaskLatencyBudgetBurn",
    "EddieTaskLatencyBudgetBurn",
]


ROOT = Path(__file__).resolve().parents[3]

ALERT_NAMES = [
    "EddieHighTimeoutEvents",
    "EddieFallbackDepthExceeded",
    "EddieHighFailureRate",
    "EddieMetricsEndpointDown",
    "EddieLatencyP99High",
    "EddieAgentImbalance",
    "EddieLowMergeEfficiency",
    "EddieContainerMemoryNearLimit",
    "EddieContainerOOMKilled",
    "EddieAgentSaturated",
    "EddieAgentSilent",
]
# After the burn-rate alerts: the timeout alerts of eddie_otel/ops/recommend.py.
TIMEOUT_ALERTS = ["EddieTimeoutTooTight", "EddieTimeoutTooLoose"]


def _rule_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / ALERT_RULES).read_text(encoding="utf-8"))
    return document


def test_committed_rule_file_equals_a_fresh_generation() -> None:
    assert (ROOT / ALERT_RULES).read_text(encoding="utf-8") == render_rules()


_CRITICAL = {"EddieFallbackDepthExceeded", "EddieMetricsEndpointDown"}


def test_failure_rate_alert_divides_failures_by_finished_tasks() -> None:
    """A ratio of rates, not the per-second failure rate the original system compared with 0.1."""
    expr = next(rule.expr for rule in rules() if rule.alert == "EddieHighFailureRate")
    numerator, _, denominator = expr.partition(" / ")
    assert numerator == "sum by (job) (rate(task_failure_total[5m]))"
    assert "sum by (job) (rate(task_success_total[5m]))" in denominator
    assert denominator.endswith(" > 0) > 0.1")


def test_every_alert_keeps_the_job_label_the_endpoint_down_inhibition_matches_on() -> None:
    """Alertmanager inhibits on `equal: [job]`: an alert aggregated without `by (job)` would escape it."""
    for rule in rules():
        aggregations = re.findall(r"\b(?:sum|max|min|count)\b(?: by \(([^)]*)\))? ?\(", rule.expr)
        assert aggregations or rule.alert == "EddieMetricsEndpointDown", rule.alert
        assert all("job" in by.split(", ") for by in aggregations), (rule.alert, aggregations)


def test_thresholds_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        THRESHOLDS.timeouts = 20  # type: ignore[misc]


def _alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rule_file()["groups"][0]["rules"] if "alert" in rule]


def _every_alerting_rule() -> list[dict[str, Any]]:
    return [rule for group in _rule_file()["groups"] for rule in group["rules"] if "alert" in rule]


def test_rule_file_has_two_groups_with_the_recordings_first_then_every_alert_in_order() -> None:
    groups = _rule_file()["groups"]
    assert [group["name"] for group in groups] == [GROUP, ANOMALY] == ["eddie-distributed-fallback", "eddie-anomaly"]
    # The anomaly group reads a week of 5-minute values, evaluated every 5 minutes whatever the global interval.
    assert "interval" not in groups[0]
    assert groups[1]["interval"] == "5m"
    anomaly_rules = groups[1]["rules"]
    assert [rule["alert"] for rule in anomaly_rules if "alert" in rule] == ["EddieAnomaly"] * 4
    assert anomaly_rules[:20] == [rule for rule in anomaly_rules if "record" in rule]
    recorded = [rule["record"] for rule in groups[0]["rules"] if "record" in rule]
    assert len(recorded) == 15
    assert groups[0]["rules"][:15] == [rule for rule in groups[0]["rules"] if "record" in rule]
    assert [rule["alert"] for rule in _alerting_rules()] == ALERT_NAMES + BURN_RATE_ALERTS + TIMEOUT_ALERTS


def test_every_alert_has_severity_summary_description_runbook_and_dashboard() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    for rule in _every_alerting_rule():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        if rule["alert"] == "EddieAnomaly":
            assert rule["labels"] == {"severity": "warning", "signal": rule["labels"]["signal"]}
        elif rule["alert"] not in BURN_RATE_ALERTS:
            assert rule["labels"] == {"severity": "critical" if rule["alert"] in _CRITICAL else "warning"}
        annotations = rule["annotations"]
        assert list(annotations) == ["summary", "description", "runbook_url", "dashboard_url"]
        assert all(text.strip() for text in annotations.values()), rule["alert"]
        base, _, anchor = annotations["runbook_url"].partition("#")
        assert base == "docs/runbooks.md"
        assert anchor == rule["alert"].lower()
        # The anchor GitHub gives a `## AlertName` heading.
        assert f"\n## {rule['alert']}\n" in runbooks, rule["alert"]
        assert re.fullmatch(
            r"http://127\.0\.0\.1:3000/d/eddie-distributed-fallback\?viewPanel=\d+", annotations["dashboard_url"]
        )


def test_burn_rate_alerts_have_one_critical_and_one_warning_each() -> None:
    alerting = _alerting_rules()[len(ALERT_NAMES) : len(_alerting_rules()) - len(TIMEOUT_ALERTS)]
    severities = [(rule["alert"], rule["labels"]["severity"]) for rule in alerting]
    assert severities == [
        ("EddieTaskSuccessBudgetBurn", "critical"),
        ("EddieTaskSuccessBudgetBurn", "warning"),
        ("EddieTaskLatencyBudgetBurn", "critical"),
        ("EddieTaskLatencyBudgetBurn", "warning"),
    ]


def test_base_urls_are_set_at_generation_time() -> None:
    text = render_rules(THRESHOLDS, Links("https://runbooks.example/eddie.md", "https://grafana.example/"))
    assert "runbook_url: https://runbooks.example/eddie.md#eddiehighfailurerate" in text
    assert "dashboard_url: https://grafana.example/d/eddie-distributed-fallback?viewPanel=" in text
    assert "127.0.0.1:3000" not in text


def test_all_rules_returns_the_rendered_rules() -> None:
    rendered = _alerting_rules()
    assert [
        (r["alert"], r["expr"], r["for"], r["labels"]["severity"], r["annotations"]["summary"]) for r in rendered
    ] == [(r.alert, r.expr, r.for_, r.severity, r.summary) for r in all_rules()]
    assert all_rules()[: len(ALERT_NAMES)] == rules()
