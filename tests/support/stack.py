"""What `eddie-otel stack` writes, for the tests of the stack."""

from __future__ import annotations

from pathlib import Path

from eddie_otel.ops import wheel

FILES = {
    "compose.yaml",
    "image/Dockerfile",
    f"image/{wheel.wheel_name()}",
    "prometheus/prometheus.yml",
    "prometheus/prometheus-alerts.yml",
    "alertmanager/alertmanager.yml",
    "alertmanager/secrets/README",
    "grafana/provisioning/datasources/prometheus.yml",
    "grafana/provisioning/dashboards/eddie.yml",
    "grafana/dashboards/distributed-fallback-dashboard.json",
    "otel-collector/collector-config.yaml",
}


def written(directory: Path) -> set[str]:
    """Every file under `directory`, relative, as a set."""
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}
