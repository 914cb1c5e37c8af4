"""`eddie-otel stack DIR`: the written files, their contents, and the refusals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.cli import main
from eddie_otel.ops import assets, wheel
from eddie_otel.ops.stack import agent_command
from tests.support.stack import FILES, written

REPO = Path(__file__).resolve().parents[3]
SERVICES = {
    "eddie-agent",
    "eddie-service",
    "eddie-docker-watch",
    "prometheus",
    "alertmanager",
    "grafana",
    "otel-collector",
}
PREFIX = "eddie-otel stack: error: "


def load(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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
    assert lines[-2] == f"next: cd '{directory}' && docker compose up -d --build   (Compose v2)"
    assert lines[-1] == (
        "then: Grafana http://127.0.0.1:3000 (admin/admin), Prometheus http://127.0.0.1:9090, "
        "fleet summary http://127.0.0.1:8503/metrics/summary?scope=fleet"
    )


def test_compose_runs_n_agents_built_from_the_directory_and_mounts_only_files_that_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tmp_path / "stack"
    assert main(["stack", str(stack), "--agents", "5"]) == 0
    capsys.readouterr()
    compose = load(stack / "compose.yaml")

    assert compose["name"] == "eddie-otel"
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), f"{name} publishes {published} beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (stack / source).exists(), f"{name} mounts {source}, which the stack lacks"
            elif source.startswith("/"):
                # The one host path: the Docker Engine's socket, for the watcher, read-only.
                assert (name, volume) == ("eddie-docker-watch", "/var/run/docker.sock:/var/run/docker.sock:ro")
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"

    agent = services["eddie-agent"]
    assert agent["build"] == {"context": "./image"}
    assert "image" not in agent
    assert agent["deploy"] == {"replicas": 5, "resources": {"limits": {"cpus": "1.0", "memory": "512M"}}}
    assert agent["labels"] == {"eddie.agent": "eddie-agent"}
    watcher = services["eddie-docker-watch"]
    assert watcher["command"] == ["eddie-otel", "docker-watch", "--host", "0.0.0.0", "--port", "8504"]
    assert watcher["ports"] == ["127.0.0.1:8504:8504"]
    assert (
        agent["command"]
        == agent_command()
        == ["eddie-otel", "demo", "--host", "0.0.0.0", "--port", "8503", "--agents", "4"]
    )
    # Replicas cannot share a published port.
    assert "ports" not in agent
    service = services["eddie-service"]
    assert service["build"] == {"context": "./image"}
    assert service["command"] == ["eddie-otel", "serve", "--host", "0.0.0.0", "--port", "8503"]
    assert service["environment"]["EDDIE_OTEL_PROMETHEUS_URL"] == "http://prometheus:9090"
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert any(flag.startswith("--storage.tsdb.retention.time=") for flag in prometheus["command"])
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    alertmanager = services["alertmanager"]
    assert "./alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert (
        "./otel-collector/collector-config.yaml:/etc/otelcol-contrib/config.yaml:ro"
        in (services["otel-collector"]["volumes"])
    )


def test_dockerfile_installs_the_wheel_beside_it_and_runs_the_agent_command(stack: Path) -> None:
    name = wheel.wheel_name()
    lines = (stack / "image/Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0].startswith("FROM python:3")
    assert f"COPY {name} ./" in instructions
    # The image runs the service and the demo: the wheel with the service extra.
    assert f"RUN pip install --no-cache-dir './{name}[service,docker]'" in instructions
    assert json.loads(instructions[-1].removeprefix("CMD ")) == agent_command()
    assert zipfile.is_zipfile(stack / "image" / name)


def test_wheel_holds_the_package_its_assets_and_entry_point(tmp_path: Path) -> None:
    built = wheel.build_wheel(tmp_path)
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
        info = built.name.split("-py3")[0] + ".dist-info"
        assert {"eddie_otel/__init__.py", "eddie_otel/py.typed", "eddie_otel/ops/stack.py"} <= names
        assert "eddie_otel/_assets/dashboards/distributed-fallback-dashboard.json" in names
        assert "eddie_otel/_assets/collector-config.yaml" in names
        assert {f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD", f"{info}/entry_points.txt"} <= names
        assert not any("__pycache__" in name for name in names)
        assert "eddie-otel = eddie_otel.cli:main" in archive.read(f"{info}/entry_points.txt").decode()
    # The same files give the same bytes.
    assert wheel.build_wheel(tmp_path / "again").read_bytes() == built.read_bytes()


def test_prometheus_finds_the_agents_by_dns_and_sends_alerts_to_alertmanager(stack: Path) -> None:
    config = load(stack / "prometheus/prometheus.yml")
    [job] = config["scrape_configs"]
    assert job["job_name"] == "eddie"
    assert job["dns_sd_configs"] == [{"names": ["eddie-agent"], "type": "A", "port": 8503, "refresh_interval": "30s"}]
    assert job["static_configs"] == [{"targets": ["eddie-service:8503", "eddie-docker-watch:8504"]}]
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]}


def test_collector_exports_nowhere_outside_the_stack_until_told(stack: Path) -> None:
    config = load(stack / "otel-collector/collector-config.yaml")
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus", "debug"]
    # Defined, so that turning one on is adding its name to the pipeline.
    assert {"prometheusremotewrite", "otlp"} <= set(config["exporters"])
    [job] = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert job["dns_sd_configs"][0]["names"] == ["eddie-agent"]
    assert "static_configs" not in job
    header = (stack / "otel-collector/collector-config.yaml").read_text(encoding="utf-8")
    assert "EDDIE_OTELCOL_REMOTE_WRITE_URL" in header
    assert "service.pipelines.metrics.exporters" in header


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


def test_rules_and_alertmanager_routing_are_the_shipped_files(stack: Path) -> None:
    assert (stack / "prometheus/prometheus-alerts.yml").read_bytes() == (
        assets.asset_path(assets.ALERT_RULES).read_bytes()
    )
    assert (stack / "alertmanager/alertmanager.yml").read_bytes() == (
        assets.asset_path(assets.ALERTMANAGER_CONFIG).read_bytes()
    )


def test_refuses_to_overwrite_without_force(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (stack / "compose.yaml").write_text("# mine\n", encoding="utf-8")
    (stack / "prometheus/prometheus.yml").unlink()

    assert main(["stack", str(stack)]) == 1

    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(
        f"{PREFIX}{stack} already has compose.yaml, image/Dockerfile, prometheus/prometheus-alerts.yml, "
    )
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
