"""`eddie-otel stack DIR` under promtool, from a checkout and from an installed wheel."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.cli import main
from eddie_otel.ops import alerts, assets, slo

FILES = {
    "compose.yaml",
    "prometheus/prometheus.yml",
    "prometheus/prometheus-alerts.yml",
    "grafana/provisioning/datasources/prometheus.yml",
    "grafana/provisioning/dashboards/eddie.yml",
    "grafana/dashboards/distributed-fallback-dashboard.json",
    "otel-collector/collector-config.yaml",
}
REPO = Path(__file__).resolve().parents[2]


def written(directory: Path) -> set[str]:
    """Every file under `directory`, relative, as a set."""
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}


def load(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def promtool_check_config(promtool: str, config: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check config`, which also checks the rule files the config loads."""
    return subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A stack written into a fresh directory by `eddie-otel stack`."""
    directory = tmp_path / "stack"
    assert main(["stack", str(directory)]) == 0
    capsys.readouterr()
    return directory


def test_prometheus_config_passes_promtool_and_scrapes_the_demo_service(stack: Path, promtool: str) -> None:
    config = stack / "prometheus/prometheus.yml"

    checked = promtool_check_config(promtool, config)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = len(alerts.all_rules()) + len(slo.recording_rules())
    assert f"SUCCESS: {count} rules found" in checked.stdout + checked.stderr
    document = load(config)
    [job] = [job for job in document["scrape_configs"] if job["job_name"] == alerts.JOB]
    assert job["static_configs"] == [{"targets": ["eddie-demo:8503"]}]
    assert job["metrics_path"] == "/metrics/prometheus"
    assert document["rule_files"] == ["prometheus-alerts.yml"]
    # Retention is a server flag (compose.yaml); Prometheus rejects it in this file.
    assert "retention" not in yaml.safe_dump(document)


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_stack_works_from_an_installed_wheel(tmp_path: Path, promtool: str) -> None:
    """Build the wheel, install it with its dependencies into a fresh venv, run `eddie-otel stack` from there.

    A plain install (no --system-site-packages, no reuse of this venv) takes about 15 s here with the
    package index reachable, so the test does the real thing.
    """
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:
        # The build backend is already here: no isolated build environment to download.
        build.insert(4, "--no-isolation")
    _run(build, cwd=tmp_path)
    [wheel] = dist.glob("eddie_otel-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    bin_dir = venv / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path)

    directory = tmp_path / "from-wheel"
    # Run outside the checkout, so nothing can come from it.
    stacked = _run([str(bin_dir / "eddie-otel"), "stack", str(directory)], cwd=tmp_path)

    assert written(directory) == FILES
    assert "next: cd " in stacked.stdout
    checked = promtool_check_config(promtool, directory / "prometheus/prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    located = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "import eddie_otel.ops.assets as a; print(a.asset_path(a.DASHBOARD)); print(a.asset_path(a.ALERT_RULES))",
        ],
        cwd=tmp_path,
    )
    dashboard, rules = (Path(line) for line in located.stdout.splitlines())
    assert dashboard.is_relative_to(venv.resolve())
    assert rules.is_relative_to(venv.resolve())
    assert dashboard.parts[-4:] == ("eddie_otel", "_assets", "dashboards", "distributed-fallback-dashboard.json")
    assert dashboard.read_bytes() == (REPO / assets.DASHBOARD).read_bytes()
    assert rules.read_bytes() == (REPO / assets.ALERT_RULES).read_bytes()
