"""The alert rules under promtool: it accepts the rule file, its unit tests pass and pin each threshold."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from eddie_otel.ops import alerts
from eddie_otel.ops.alerts import THRESHOLDS, Thresholds, render_rules, rules
from eddie_otel.ops.assets import ALERT_RULES

ROOT = Path(__file__).resolve().parents[2]


RULES_TEST = ROOT / "tests" / "support" / "rules" / "eddie-alerts-test.yml"
_SILENT = (
    "an agent with running tasks unseen for over 5 minutes fires 1 minute later; an idle or a seen one stays silent"
)


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def test_promtool_check_rules_accepts_the_rule_file(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(ROOT / ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    # 32 in eddie-distributed-fallback, 24 in eddie-anomaly.
    assert "SUCCESS: 56 rules found" in result.stdout


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
        (
            {"agent_saturation": 0.89},
            "a saturation of exactly 90 % stays silent, and so does an agent without a capacity",
        ),
        ({"agent_saturation": 0.96}, "a saturation of 95 % fires after 10 minutes"),
        ({"agent_saturation_for": "11m"}, "a saturation of 95 % fires after 10 minutes"),
        ({"agent_silent_seconds": 240}, _SILENT),
        ({"agent_silent_seconds": 360}, _SILENT),
        ({"agent_silent_for": "2m"}, _SILENT),
    ],
)
def test_each_threshold_is_pinned_by_a_unit_test(
    promtool: str, tmp_path: Path, change: dict[str, Any], failing_test: str
) -> None:
    # Same layout as the repository, so the test file's relative rule_files path resolves to the moved rules.
    (tmp_path / "dashboards").mkdir()
    (tmp_path / ALERT_RULES).write_text(render_rules(Thresholds(**change)), encoding="utf-8")
    (tmp_path / "tests" / "support" / "rules").mkdir(parents=True)
    shutil.copy(RULES_TEST, tmp_path / "tests" / "support" / "rules")
    result = _run(promtool, "test", "rules", "tests/support/rules/eddie-alerts-test.yml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert f"name: {failing_test}," in result.stdout + result.stderr


def test_first_violation_of_a_new_series_needs_the_new_series_guard(
    promtool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `unless ... offset`, increase() misses a counter's first increment: the unit test must notice."""
    unguarded = [
        dataclasses.replace(rule, expr=rule.expr.partition(" or ")[0])
        if rule.alert in ("EddieFallbackDepthExceeded", "EddieContainerOOMKilled")
        else rule
        for rule in rules()
    ]
    monkeypatch.setattr(alerts, "rules", lambda thresholds=THRESHOLDS: unguarded)
    text = render_rules()
    stripped = [rule for rule in unguarded if rule.alert in ("EddieFallbackDepthExceeded", "EddieContainerOOMKilled")]
    assert len(stripped) == 2
    assert all("unless" not in rule.expr for rule in stripped)
    (tmp_path / "dashboards").mkdir()
    (tmp_path / ALERT_RULES).write_text(text, encoding="utf-8")
    (tmp_path / "tests" / "support" / "rules").mkdir(parents=True)
    shutil.copy(RULES_TEST, tmp_path / "tests" / "support" / "rules")
    result = _run(promtool, "test", "rules", "tests/support/rules/eddie-alerts-test.yml", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "name: a depth violation fires, including the first one of a new series; none stays silent,"
        in result.stdout + result.stderr
    )
    assert (
        "name: an OOM kill fires at once, including the first one of a new series; none stays silent,"
        in result.stdout + result.stderr
    )
