"""asset_path: the shipped files are found in a checkout and in an installed wheel's `_assets`."""

from __future__ import annotations

from pathlib import Path

import pytest

from eddie_otel.errors import EddieOtelError
from eddie_otel.ops import assets
from eddie_otel.ops.assets import (
    ALERT_RULES,
    COLLECTOR_CONFIG,
    DASHBOARD,
    PROMETHEUS_CONFIG,
    PROVISIONING,
    asset_path,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", [DASHBOARD, ALERT_RULES, PROMETHEUS_CONFIG, PROVISIONING, COLLECTOR_CONFIG])
def test_checkout_finds_every_shipped_file(name: str) -> None:
    assert asset_path(name) == ROOT / name


def test_paths_are_the_ones_of_the_contract() -> None:
    assert (DASHBOARD, ALERT_RULES, PROMETHEUS_CONFIG, PROVISIONING, COLLECTOR_CONFIG) == (
        "dashboards/distributed-fallback-dashboard.json",
        "dashboards/prometheus-alerts.yml",
        "dashboards/prometheus.yml",
        "dashboards/grafana/provisioning",
        "collector-config.yaml",
    )


def _layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "site" / "eddie_otel"
    package.mkdir(parents=True)
    monkeypatch.setattr(assets, "_PACKAGE_DIR", package)
    return package


def test_wheel_assets_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _layout(tmp_path, monkeypatch)
    shipped = package / "_assets" / COLLECTOR_CONFIG
    shipped.parent.mkdir()
    shipped.write_text("receivers: {}\n")
    (package.parent / COLLECTOR_CONFIG).write_text("a checkout's copy\n")
    assert asset_path(COLLECTOR_CONFIG) == shipped


def test_checkout_copy_is_used_without_wheel_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _layout(tmp_path, monkeypatch)
    (package.parent / "dashboards").mkdir()
    (package.parent / DASHBOARD).write_text("{}\n")
    assert asset_path(DASHBOARD) == package.parent / DASHBOARD


def test_missing_file_is_a_clear_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _layout(tmp_path, monkeypatch)
    with pytest.raises(EddieOtelError) as raised:
        asset_path(ALERT_RULES)
    assert str(raised.value) == (
        "shipped file 'dashboards/prometheus-alerts.yml' not found (looked in "
        f"{package / '_assets' / ALERT_RULES} and {package.parent / ALERT_RULES}); reinstall eddie-otel"
    )
