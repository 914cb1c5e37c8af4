"""The anomaly rules under promtool: a steady daily pattern is silent, a spike fires, zeros and a first week never,
each constant pinned on both sides; and the dashboard's anomaly bands over that week of recordings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from eddie_otel.ops import anomaly
from eddie_otel.ops.alerts import render_rules
from eddie_otel.ops.assets import ALERT_RULES, DASHBOARD
from eddie_otel.ops.dashboard import expand_variables
from eddie_otel.ops.dashboard.panels import BAND, BAND_LOW

ROOT = Path(__file__).resolve().parents[2]
RULES_TEST = ROOT / "tests" / "support" / "rules" / "eddie-anomaly-test.yml"


def test_promtool_unit_tests_of_the_anomaly_group_pass(promtool: str, tmp_path: Path) -> None:
    # The shipped rule file's eddie-anomaly group alone, in the repository's layout so that the test file's
    # relative rule_files path resolves to it: the other group would triple the week of evaluations' cost.
    document: dict[str, Any] = yaml.safe_load(render_rules())
    document["groups"] = [group for group in document["groups"] if group["name"] == anomaly.GROUP]
    assert [group["interval"] for group in document["groups"]] == ["5m"]
    (tmp_path / "dashboards").mkdir()
    (tmp_path / ALERT_RULES).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    (tmp_path / "tests" / "support" / "rules").mkdir(parents=True)
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    for job, case in _band_cases():
        # Into the test group whose input series are the job's.
        [group] = [
            group for group in tests["tests"] if any(f'job="{job}"' in s["series"] for s in group["input_series"])
        ]
        group.setdefault("promql_expr_test", []).append(case)
    (tmp_path / "tests" / "support" / "rules" / RULES_TEST.name).write_text(
        yaml.safe_dump(tests, sort_keys=False), encoding="utf-8"
    )
    result = subprocess.run(
        [promtool, "test", "rules", "tests/support/rules/eddie-anomaly-test.yml"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_anomaly_group_is_shipped_with_its_interval() -> None:
    document = yaml.safe_load((ROOT / ALERT_RULES).read_text(encoding="utf-8"))
    [group] = [group for group in document["groups"] if group["name"] == anomaly.GROUP]
    assert group["interval"] == "5m"
    recorded = [rule["record"] for rule in group["rules"] if "record" in rule]
    assert recorded == [
        f"eddie:anomaly:{signal}:{part}"
        for signal in ("timeouts", "failure_ratio", "latency_p99", "splits")
        for part in ("rate5m", "baseline", "stddev", "upper", "lower")
    ]
    alerting = [rule for rule in group["rules"] if "alert" in rule]
    assert [(rule["alert"], rule["labels"]["signal"], rule["for"]) for rule in alerting] == [
        ("EddieAnomaly", signal, "15m") for signal in ("timeouts", "failure_ratio", "latency_p99", "splits")
    ]


def _bands() -> dict[str, tuple[str, str, str]]:
    """Per panel of the committed dashboard that draws a band: (the signal's line, the band's top, its bottom)."""
    dashboard = json.loads((ROOT / DASHBOARD).read_text(encoding="utf-8"))
    bands = {}
    for panel in dashboard["panels"]:
        if panel.get("fieldConfig", {}).get("overrides"):
            by_legend = {target.get("legendFormat", ""): target["expr"] for target in panel["targets"]}
            [line] = [expr for legend, expr in by_legend.items() if legend.endswith("(5m)")]
            bands[panel["title"]] = (line, by_legend[BAND], by_legend[BAND_LOW])
    return bands


def _for_job(expr: str, job: str) -> str:
    # The job variable set to `job`, every other variable to All.
    chosen = expr.replace('"$job"', f'"{job}"')
    return f"({expand_variables(chosen)})"


def _band_cases() -> list[tuple[str, dict[str, Any]]]:
    """promql_expr_test cases of the dashboard's band queries (which need a week of recordings, so the dashboard
    test leaves them out), the job variable set to one job, as (job, case): none before the week; then steady's
    line inside its band, and spiky's outside it once its spike has begun."""
    bands = _bands()
    assert len(bands) == len(anomaly.SIGNALS)
    one = [{"labels": "{}", "value": 1}]
    cases: list[tuple[str, dict[str, Any]]] = []
    for line, top, bottom in bands.values():
        line_s, top_s, bottom_s = (_for_job(expr, "steady") for expr in (line, top, bottom))
        line_p, top_p, bottom_p = (_for_job(expr, "spiky") for expr in (line, top, bottom))
        outside = f"count({line_p} > {top_p} or {line_p} < {bottom_p})"
        cases += [
            ("steady", {"expr": f"count({top_s}) or count({bottom_s})", "eval_time": "6d23h30m", "exp_samples": []}),
            ("steady", {"expr": f"count({top_s} > {bottom_s})", "eval_time": "7d12h", "exp_samples": one}),
            (
                "steady",
                {"expr": f"count(({line_s} >= {bottom_s}) <= {top_s})", "eval_time": "7d12h", "exp_samples": one},
            ),
            ("spiky", {"expr": outside, "eval_time": "7d12h15m", "exp_samples": one}),
        ]
    return cases
