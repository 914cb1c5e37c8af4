"""dashboards/prometheus.yml: it loads the rule file beside it and scrapes the eddie-otel endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from eddie_otel.ops.alerts import JOB
from eddie_otel.ops.assets import ALERT_RULES, PROMETHEUS_CONFIG

ROOT = Path(__file__).resolve().parents[3]


def _config() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / PROMETHEUS_CONFIG).read_text(encoding="utf-8"))
    return document


def test_rule_file_is_the_one_beside_the_config() -> None:
    assert _config()["rule_files"] == ["prometheus-alerts.yml"]
    assert (ROOT / PROMETHEUS_CONFIG).parent / "prometheus-alerts.yml" == ROOT / ALERT_RULES


def test_eddie_job_scrapes_the_metrics_endpoint_on_8503() -> None:
    job, _ = _config()["scrape_configs"]
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


def test_fleet_job_reads_the_discovery_directory() -> None:
    _, job = _config()["scrape_configs"]
    assert job == {
        "job_name": f"{JOB}-fleet",
        "scrape_interval": "10s",
        "metrics_path": "/metrics/prometheus",
        "file_sd_configs": [{"files": ["/var/lib/eddie-otel/discovery/*.json"], "refresh_interval": "30s"}],
    }
    assert "EDDIE_OTEL_DISCOVERY_DIR=/var/lib/eddie-otel/discovery" in (ROOT / PROMETHEUS_CONFIG).read_text("utf-8")
