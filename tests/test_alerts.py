"""The Prometheus alert rules: the committed file is current, promtool accepts it, its unit tests pin each threshold."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.ops import alerts
from eddie_otel.ops.alerts import GROUP, THRESHOLDS, Thresholds, all_rules, render_rules, rules
from eddie_otel.ops.assets import ALERT_RULES
from eddie_otel.ops.links import Links

ROOT = Path(__file__).resolve().parents[1]
RULES_TEST = Path(__file__).resolve().parent / "rules" / "eddie-alerts-test.yml"

ALERT_NAMES = [
    "EddieHighTimeoutEvents",
    "EddieFallbackDepthExceeded",
    "EddieHighFailureRate",
    "EddieMetricsEndpointDown",
    "EddieLatencyP99High",
    "EddieAgentImbalance",
    "EddieLowMergeEfficiency",
]
BURN_RATE_ALERTS = [
    "EddieTaskSuccessBudgetBurn",
    "EddieTaskSuccessBudgetBurn",
    "EddieTaskLatencyBudgetBurn",
    "EddieTaskLatencyBudgetBurn",
]


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def _rule_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / ALERT_RULES).read_text(encoding="utf-8"))
    return document


def test_committed_rule_file_equals_a_fresh_generation() -> None:
    assert (ROOT / ALERT_RULES).read_text(encoding="utf-8") == render_rules()


def _alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rule_file()["groups"][0]["rules"] if "alert" in rule]


def test_rule_file_has_one_group_with_the_recordings_first_then_every_alert_in_order() -> None:
    groups = _rule_file()["groups"]
    assert [group["name"] for group in groups] == [GROUP] == ["eddie-distributed-fallback"]
    recorded = [rule["record"] for rule in groups[0]["rules"] if "record" in rule]
    assert len(recorded) == 14
    assert groups[0]["rules"][:14] == [rule for rule in groups[0]["rules"] if "record" in rule]
    assert [rule["alert"] for rule in _alerting_rules()] == ALERT_NAMES + BURN_RATE_ALERTS


def test_every_alert_has_severity_summary_description_runbook_and_dashboard() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    for rule in _alerting_rules():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        if rule["alert"] not in BURN_RATE_ALERTS:
            assert rule["labels"] == {"severity": "critical" if rule["alert"] in _CRITICAL else "warning"}
        annotations = rule["annotations"]
        assert list(annotations) == ["summary", "description", "runbook_url", "dashboard_url"]
        assert all(text.strip() for text in annotations.values()), rule["alert"]
        base, _, anchor = annotations["runbook_url"].partition("#")
        assert base.endswith("/docs/runbooks.md")
        assert anchor == rule["alert"].lower()
        # The anchor GitHub gives a `## AlertName` heading.
        assert f"\n## {rule['alert']}\n" in runbooks, rule["alert"]
        assert re.fullmatch(
            r"http://127\.0\.0\.1:3000/d/eddie-distributed-fallback\?viewPanel=\d+", annotations["dashboard_url"]
        )


def test_burn_rate_alerts_have_one_critical_and_one_warning_each() -> None:
    severities = [(rule["alert"], rule["labels"]["severity"]) for rule in _alerting_rules()[len(ALERT_NAMES) :]]
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


_CRITICAL = {"EddieFallbackDepthExceeded", "EddieMetricsEndpointDown"}


def test_all_rules_returns_the_rendered_rules() -> None:
    rendered = _alerting_rules()
    assert [
        (r["alert"], r["expr"], r["for"], r["labels"]["severity"], r["annotations"]["summary"]) for r in rendered
    ] == [(r.alert, r.expr, r.for_, r.severity, r.summary) for r in all_rules()]
    assert all_rules()[: len(ALERT_NAMES)] == rules()


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


def test_promtool_check_rules_accepts_the_rule_file(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(ROOT / ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 25 rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# Each moved threshold must break the promtool test that sits just on the other
# side of it: the unit tests pin the values instead of merely passing.
@pytest.mark.parametrize(
    ("change", "failing_test"),
    [
        ({"timeouts": 9}, "exactly 10 timeouts in 5 minutes stay silent"),
        ({"timeouts": 11}, "11 timeouts in 5 minutes, no single agent above 10, fire after 1 minute"),
        ({"failure_ratio": 0.09}, "a failure ratio of 1/11 (9.1 %) stays silent"),
        ({"failure_ratio": 0.12}, "a failure ratio of 1/9 (11.1 %) fires after 5 minutes"),
        ({"endpoint_down_for": "1m"}, "an endpoint down for 2 minutes fires; 1 minute, or another job, stays silent"),
        ({"latency_p99_seconds": 59.0}, "a p99 of 59.4 s stays silent"),
        ({"latency_p99_seconds": 91.0}, "a p99 of 90 s over two stages fires after 10 minutes"),
        ({"agent_balance": 1.8}, "a balance of 1.9 stays silent"),
        ({"agent_balance": 2.2}, "a balance of 2.1 fires after 15 minutes"),
        ({"merge_efficiency": 0.92}, "a merge efficiency of 91 % stays silent"),
        ({"merge_efficiency": 0.88}, "a merge efficiency of 89 % fires after 15 minutes"),
        ({"depth_for": "1m"}, "a depth violation fires, including the first one of a new series; none stays silent"),
    ],
)
def test_each_threshold_is_pinned_by_a_unit_test(
    promtool: str, tmp_path: Path, change: dict[str, Any], failing_test: str
) -> None:
    # Same layout as the repository, so the test file's relative rule_files path resolves to the moved rules.
    (tmp_path / "dashboards").mkdir()
    (tmp_path / ALERT_RULES).write_text(render_rules(Thresholds(**change)), encoding="utf-8")
    (tmp_path / "tests" / "rules").mkdir(parents=True)
    shutil.copy(RULES_TEST, tmp_path / "tests" / "rules")
    result = _run(promtool, "test", "rules", "tests/rules/eddie-alerts-test.yml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert f"name: {failing_test}," in result.stdout + result.stderr


def test_first_violation_of_a_new_series_needs_the_new_series_guard(
    promtool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `unless ... offset`, increase() misses a counter's first increment: the unit test must notice."""
    unguarded = [
        dataclasses.replace(rule, expr=rule.expr.partition(" or ")[0])
        if rule.alert == "EddieFallbackDepthExceeded"
        else rule
        for rule in rules()
    ]
    monkeypatch.setattr(alerts, "rules", lambda thresholds=THRESHOLDS: unguarded)
    text = render_rules()
    assert "unless" not in text
    (tmp_path / "dashboards").mkdir()
    (tmp_path / ALERT_RULES).write_text(text, encoding="utf-8")
    (tmp_path / "tests" / "rules").mkdir(parents=True)
    shutil.copy(RULES_TEST, tmp_path / "tests" / "rules")
    result = _run(promtool, "test", "rules", "tests/rules/eddie-alerts-test.yml", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "name: a depth violation fires, including the first one of a new series; none stays silent,"
        in result.stdout + result.stderr
    )
