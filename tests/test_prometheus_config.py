"""dashboards/prometheus.yml: promtool accepts it with the rules it loads, and it scrapes the eddie-otel endpoint."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from eddie_otel.ops.alerts import JOB
from eddie_otel.ops.assets import ALERT_RULES, PROMETHEUS_CONFIG

ROOT = Path(__file__).resolve().parents[1]


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
    assert "SUCCESS: 25 rules found" in result.stdout  # 14 SLO recordings, 11 alerts


def test_rule_file_is_the_one_beside_the_config() -> None:
    assert _config()["rule_files"] == ["prometheus-alerts.yml"]
    assert (ROOT / PROMETHEUS_CONFIG).parent / "prometheus-alerts.yml" == ROOT / ALERT_RULES


def test_eddie_job_scrapes_the_metrics_endpoint_on_8503() -> None:
    [job] = _config()["scrape_configs"]
    assert job == {
        "job_name": JOB,
        "scrape_interval": "10s",
        "metrics_path": "/metrics/prometheus",
        "static_configs": [{"targets": ["localhost:8503"]}],
    }


def test_retention_is_left_to_the_server_flag() -> None:
    config = _config()
    assert "storage" not in config
    assert "--storage.tsdb.retention.time" in (ROOT / PROMETHEUS_CONFIG).read_text(encoding="utf-8")


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
