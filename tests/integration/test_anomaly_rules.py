"""The anomaly rules under promtool: a steady daily pattern is silent, a spike fires, zeros and a first week never."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from eddie_otel.ops import anomaly
from eddie_otel.ops.alerts import render_rules
from eddie_otel.ops.assets import ALERT_RULES

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
    shutil.copy(RULES_TEST, tmp_path / "tests" / "support" / "rules")
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
