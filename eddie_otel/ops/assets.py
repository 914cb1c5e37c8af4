"""Where the shipped operations files are: inside an installed wheel, or in a source checkout.

The wheel carries `dashboards/` and `collector-config.yaml` under `eddie_otel/_assets/`;
a checkout has them at the repository root beside the package.
"""

from __future__ import annotations

from pathlib import Path

from eddie_otel.errors import EddieOtelError

__all__ = [
    "ALERTMANAGER_CONFIG",
    "ALERT_RULES",
    "COLLECTOR_CONFIG",
    "DASHBOARD",
    "PROMETHEUS_CONFIG",
    "PROVISIONING",
    "asset_path",
]

DASHBOARD = "dashboards/distributed-fallback-dashboard.json"
ALERT_RULES = "dashboards/prometheus-alerts.yml"
ALERTMANAGER_CONFIG = "dashboards/alertmanager.yml"
PROMETHEUS_CONFIG = "dashboards/prometheus.yml"
PROVISIONING = "dashboards/grafana/provisioning"
COLLECTOR_CONFIG = "collector-config.yaml"

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def asset_path(name: str) -> Path:
    """The path of the shipped file or directory `name` (one of this module's constants)."""
    candidates = (_PACKAGE_DIR / "_assets" / name, _PACKAGE_DIR.parent / name)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    looked = " and ".join(str(candidate) for candidate in candidates)
    raise EddieOtelError(f"shipped file {name!r} not found (looked in {looked}); reinstall eddie-otel")
