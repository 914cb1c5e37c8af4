"""`eddie-otel stack DIR`: the written files, checked with promtool, from a checkout and from an installed wheel."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.cli import main
from eddie_otel.ops import alerts, assets, slo

REPO = Path(__file__).resolve().parent.parent
FILES = {
    "compose.yaml",
    "prometheus/prometheus.yml",
    "prometheus/prometheus-alerts.yml",
    "grafana/provisioning/datasources/prometheus.yml",
    "grafana/provisioning/dashboards/eddie.yml",
    "grafana/dashboards/distributed-fallback-dashboard.json",
    "otel-collector/collector-config.yaml",
}
SERVICES = {"eddie-demo", "prometheus", "grafana", "otel-collector"}
PREFIX = "eddie-otel stack: error: "


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


def test_writes_every_file_and_says_what_next(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "my stack"

    assert main(["stack", str(directory)]) == 0

    assert written(directory) == FILES
    out = capsys.readouterr()
    assert out.err == ""
    lines = out.out.splitlines()
    assert sorted(lines[:-2]) == sorted(f"wrote {directory / name}" for name in FILES)
    assert lines[-2] == f"next: cd '{directory}' && docker compose up -d"
    assert lines[-1] == (
        "then: Grafana http://127.0.0.1:3000 (admin/admin), Prometheus http://127.0.0.1:9090, "
        "metrics http://127.0.0.1:8503/metrics/prometheus"
    )


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


def test_compose_has_the_four_services_and_mounts_only_files_that_exist(stack: Path) -> None:
    compose = load(stack / "compose.yaml")

    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), f"{name} publishes {published} beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (stack / source).exists(), f"{name} mounts {source}, which the stack lacks"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"

    demo = services["eddie-demo"]
    assert "eddie-otel demo --host 0.0.0.0 --port 8503" in demo["command"][-1]
    assert "pip install" in demo["command"][-1]
    assert demo["environment"]["EDDIE_OTEL_PACKAGE"].startswith("${EDDIE_OTEL_PACKAGE:-eddie-otel==")
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert any(flag.startswith("--storage.tsdb.retention.time=") for flag in prometheus["command"])
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert services["otel-collector"]["environment"]["EDDIE_OTELCOL_SCRAPE_TARGET"] == "eddie-demo:8503"
    assert (
        "./otel-collector/collector-config.yaml:/etc/otelcol-contrib/config.yaml:ro"
        in (services["otel-collector"]["volumes"])
    )


def test_grafana_provisioning_finds_the_prometheus_service_and_the_dashboard(stack: Path) -> None:
    grafana = load(stack / "compose.yaml")["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"

    datasources = load(stack / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert [(d["type"], d["url"]) for d in datasources] == [("prometheus", "http://prometheus:9090")]
    [provider] = load(stack / "grafana/provisioning/dashboards/eddie.yml")["providers"]
    # The provider reads the directory compose mounts the dashboard into.
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads((stack / "grafana/dashboards/distributed-fallback-dashboard.json").read_text("utf-8"))
    assert dashboard == json.loads(assets.asset_path(assets.DASHBOARD).read_text("utf-8"))
    assert dashboard["uid"] == "eddie-distributed-fallback"


def test_rules_and_collector_config_are_the_shipped_files(stack: Path) -> None:
    assert (stack / "prometheus/prometheus-alerts.yml").read_bytes() == (
        assets.asset_path(assets.ALERT_RULES).read_bytes()
    )
    assert (stack / "otel-collector/collector-config.yaml").read_bytes() == (
        assets.asset_path(assets.COLLECTOR_CONFIG).read_bytes()
    )


def test_refuses_to_overwrite_without_force(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (stack / "compose.yaml").write_text("# mine\n", encoding="utf-8")
    (stack / "prometheus/prometheus.yml").unlink()

    assert main(["stack", str(stack)]) == 1

    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"{PREFIX}{stack} already has compose.yaml, prometheus/prometheus-alerts.yml, ")
    assert out.err.endswith("; pass --force to overwrite\n")
    assert "prometheus/prometheus.yml," not in out.err
    # Nothing was written: the edited file stays, the missing one stays missing.
    assert (stack / "compose.yaml").read_text(encoding="utf-8") == "# mine\n"
    assert not (stack / "prometheus/prometheus.yml").exists()

    assert main(["stack", str(stack), "--force"]) == 0

    assert (stack / "compose.yaml").read_text(encoding="utf-8").startswith("# The eddie-otel monitoring stack")
    assert written(stack) == FILES


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_the_way = tmp_path / "stack"
    in_the_way.write_text("", encoding="utf-8")

    assert main(["stack", str(in_the_way)]) == 1

    assert capsys.readouterr().err == f"{PREFIX}{in_the_way} exists and is not a directory\n"


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
