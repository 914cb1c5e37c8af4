"""`eddie-otel stack DIR` under promtool, from a checkout and from an installed wheel, and its agent image's
contents built the way the Dockerfile builds them."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.cli import main
from eddie_otel.ops import alerts, anomaly, assets, recommend, slo
from tests.conftest import free_port
from tests.support.helpers import wait_until
from tests.support.stack import FILES, written

REPO = Path(__file__).resolve().parents[2]


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


def test_prometheus_config_passes_promtool_and_discovers_the_agents_by_dns(stack: Path, promtool: str) -> None:
    config = stack / "prometheus/prometheus.yml"

    checked = promtool_check_config(promtool, config)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = (
        len(alerts.all_rules())
        + len(slo.recording_rules())
        + len(recommend.recording_rules())
        + len(anomaly.recording_rules())
        + len(anomaly.alert_rules())
    )
    assert f"SUCCESS: {count} rules found" in checked.stdout + checked.stderr
    document = load(config)
    [job] = [job for job in document["scrape_configs"] if job["job_name"] == alerts.JOB]
    assert job["static_configs"] == [{"targets": ["eddie-service:8503", "eddie-docker-watch:8504"]}]
    assert job["dns_sd_configs"] == [{"names": ["eddie-agent"], "type": "A", "port": 8503, "refresh_interval": "30s"}]
    assert job["metrics_path"] == "/metrics/prometheus"
    assert document["rule_files"] == ["prometheus-alerts.yml"]
    # Retention is a server flag (compose.yaml); Prometheus rejects it in this file.
    assert "retention" not in yaml.safe_dump(document)


def test_alertmanager_config_of_the_stack_passes_amtool(stack: Path, amtool: str) -> None:
    checked = subprocess.run(
        [amtool, "check-config", str(stack / "alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


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


def _dockerfile(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The COPY sources (with their destination) and RUN commands of a Dockerfile, and its CMD."""
    copies, runs, cmd = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        keyword, _, rest = line.partition(" ")
        if keyword == "COPY":
            source, destination = rest.split()
            copies.append((source, destination))
        elif keyword == "RUN":
            runs.append(rest)
        elif keyword == "CMD":
            cmd = json.loads(rest)
    return [*copies, *(("RUN", run) for run in runs)], cmd


def _scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError):
        return ""


def test_the_agent_image_built_as_the_dockerfile_builds_it_runs_the_compose_command_and_is_scraped(
    stack: Path, tmp_path: Path
) -> None:
    """What `docker compose build` would do, without a Docker engine: a fresh venv stands for the image.

    The Dockerfile's COPY puts the wheel in its WORKDIR and its RUN installs it with pip; the same
    pip line runs here in the image directory with the venv's pip. Then the compose file's command for
    the agent service runs (on a free port instead of 8503) and its endpoint is scraped.
    """
    steps, cmd = _dockerfile(stack / "image/Dockerfile")
    workdir = tmp_path / "opt-eddie-otel"
    workdir.mkdir()
    venv = tmp_path / "image-venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    bin_dir = venv / "bin"
    for source, action in steps:
        if source == "RUN":
            argv = shlex.split(action)
            assert argv[:2] == ["pip", "install"], action
            _run([str(bin_dir / "python"), "-m", "pip", *argv[1:], "--quiet"], cwd=workdir)
        else:
            (workdir / source).write_bytes((stack / "image" / source).read_bytes())

    compose = load(stack / "compose.yaml")
    command = compose["services"]["eddie-agent"]["command"]
    assert command == cmd
    port = free_port()
    argv = [str(bin_dir / command[0]), *("127.0.0.1" if a == "0.0.0.0" else a for a in command[1:])]
    argv[argv.index("--port") + 1] = str(port)
    environment = {
        **os.environ,
        **compose["services"]["eddie-agent"]["environment"],
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen(argv, cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/metrics/prometheus"
        wait_until(lambda: "task_split_total{" in _scrape(url), 60, "the agent never exposed task_split_total")
        text = _scrape(url)
        assert "target_info{" in text
        assert 'service_name="eddie-agent"' in text
        # Installed from the wheel, not from this checkout.
        shown = _run([str(bin_dir / "python"), "-c", "import eddie_otel; print(eddie_otel.__file__)"], cwd=tmp_path)
        assert Path(shown.stdout.strip()).is_relative_to(venv)
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(timeout=10)
        log.close()
