"""dashboards/prometheus.yml under promtool: it passes with its rules; a retention in the file is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from eddie_otel.ops import alerts, anomaly, recommend, slo
from eddie_otel.ops.assets import PROMETHEUS_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / PROMETHEUS_CONFIG).read_text(encoding="utf-8"))
    return document


def test_promtool_check_config_passes_and_loads_the_rules(promtool: str) -> None:
    # promtool resolves rule_files relative to the config file, as the server does.
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " SUCCESS: 1 rule files found" in result.stdout
    count = (
        len(alerts.all_rules())
        + len(slo.recording_rules())
        + len(recommend.recording_rules())
        + len(anomaly.recording_rules())
        + len(anomaly.alert_rules())
    )
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_promtool_rejects_retention_in_the_config_file(promtool: str, tmp_path: Path) -> None:
    """What the original system did: a retention key in prometheus.yml is an error, which is why it is a flag."""
    config = _config()
    config["storage"] = {"tsdb": {"retention": {"time": "15d"}}}
    config["rule_files"] = []
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "field retention not found" in result.stdout + result.stderr
