"""The Prometheus alert rules: the committed file is current, one group with every alert, the thresholds frozen."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.ops.alerts import GROUP, THRESHOLDS, Rule, render_rules, rules
from eddie_otel.ops.assets import ALERT_RULES

ROOT = Path(__file__).resolve().parents[3]

ALERT_NAMES = [
    "EddieHighTimeoutEvents",
    "EddieFallbackDepthExceeded",
    "EddieHighFailureRate",
    "EddieMetricsEndpointDown",
    "EddieLatencyP99High",
    "EddieAgentImbalance",
    "EddieLowMergeEfficiency",
]


def _rule_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / ALERT_RULES).read_text(encoding="utf-8"))
    return document


def test_committed_rule_file_equals_a_fresh_generation() -> None:
    assert (ROOT / ALERT_RULES).read_text(encoding="utf-8") == render_rules()


def test_rule_file_has_one_group_with_every_alert_in_order() -> None:
    groups = _rule_file()["groups"]
    assert [group["name"] for group in groups] == [GROUP] == ["eddie-distributed-fallback"]
    assert [rule["alert"] for rule in groups[0]["rules"]] == ALERT_NAMES


def test_every_rule_has_severity_summary_and_description() -> None:
    for rule in _rule_file()["groups"][0]["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"] == {"severity": "critical" if rule["alert"] in _CRITICAL else "warning"}
        assert set(rule["annotations"]) == {"summary", "description"}
        assert all(text.strip() for text in rule["annotations"].values()), rule["alert"]


_CRITICAL = {"EddieFallbackDepthExceeded", "EddieMetricsEndpointDown"}


def test_rules_returns_the_rendered_rules() -> None:
    rendered = _rule_file()["groups"][0]["rules"]
    assert [
        Rule(r["alert"], r["expr"], r["for"], r["labels"]["severity"], *r["annotations"].values()) for r in rendered
    ] == rules()


def test_failure_rate_alert_divides_failures_by_finished_tasks() -> None:
    """A ratio of rates, not the per-second failure rate the original system compared with 0.1."""
    expr = next(rule.expr for rule in rules() if rule.alert == "EddieHighFailureRate")
    numerator, _, denominator = expr.partition(" / ")
    assert numerator == "sum(rate(task_failure_total[5m]))"
    assert "sum(rate(task_success_total[5m]))" in denominator
    assert denominator.endswith(" > 0) > 0.1")


def test_thresholds_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        THRESHOLDS.timeouts = 20  # type: ignore[misc]
