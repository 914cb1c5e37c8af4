"""The Docker watcher against a real Docker Engine: limits, updates, usage, an OOM kill, removal, restarts, faults.

Needs the docker CLI and an engine (tests/support/docker_engine.py starts one as root, and
builds the test image from busybox-static). Without one these tests skip; with
EDDIE_OTEL_REQUIRE_DOCKER=1 (CI) they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eddie_otel
from eddie_otel.docker import DockerWatcher, readings
from eddie_otel.docker.engine import connect
from tests.conftest import free_port
from tests.support.docker_engine import (
    IMAGE,
    REQUIRE_DOCKER,
    docker,
    ensure_engine,
    ensure_image,
    start_daemon,
)
from tests.support.helpers import families, scrape, wait_until

MiB = 2**20
RUN = f"eddie-it-{os.getpid()}"
LABEL = f"eddie.test.{os.getpid()}"


def _unavailable(message: str) -> None:
    if REQUIRE_DOCKER:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    """The default engine with the test image; the containers this module made are removed after it."""
    try:
        import docker as _sdk  # noqa: F401
    except ModuleNotFoundError:
        _unavailable("the Docker SDK is not installed: pip install -e '.[dev]'")
    try:
        ensure_engine()
        ensure_image()
    except RuntimeError as error:
        _unavailable(f"no Docker Engine: {error}")
    yield IMAGE
    # Watched or not, every container of this module's run carries its name prefix.
    left = docker("ps", "-aq", "--filter", f"name=^/?{RUN}-", check=False).split()
    if left:
        docker("rm", "-f", *left, check=False)


def run(name: str, *options: str, command: tuple[str, ...] = ("sleep", "300"), label: bool = True) -> str:
    labels = ["--label", f"{LABEL}=1"] if label else ["--label", f"{LABEL}-unwatched=1"]
    return docker("run", "-d", "--network", "none", "--name", f"{RUN}-{name}", *labels, *options, IMAGE, *command)


def inspect(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(docker("inspect", f"{RUN}-{name}"))
    return found[0]


def exposition(port: int) -> dict[str, dict[str, float]]:
    """Every docker_* sample by metric (with the suffixed names) and container."""
    body, _ = scrape(port)
    values: dict[str, dict[str, float]] = {}
    for _, (_, samples) in families(body.decode()).items():
        for sample in samples:
            if sample.name.startswith("docker_"):
                key = sample.labels["container"].removeprefix(f"{RUN}-")
                if "type" in sample.labels:
                    key += f":{sample.labels['type']}"
                values.setdefault(sample.name, {})[key] = sample.value
    return values


def exposition_or_nothing(port: int) -> dict[str, dict[str, float]]:
    """As `exposition`, or nothing while the endpoint is not up yet."""
    try:
        return exposition(port)
    except OSError:
        return {}


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/health", timeout=5) as answer:
        body: dict[str, Any] = json.load(answer)
        return body


def expected_limits(name: str) -> tuple[float | None, float | None]:
    host = inspect(name)["HostConfig"]
    cpu = None
    if host["NanoCpus"]:
        cpu = host["NanoCpus"] / 1e6
    elif host["CpuQuota"] > 0:
        cpu = host["CpuQuota"] * 1000 / (host["CpuPeriod"] or 100_000)
    return cpu, (host["Memory"] or None)


def test_limits_updates_usage_oom_removal_and_a_restarted_watcher(engine: str) -> None:
    run("a", "--cpus", "0.5", "--memory", "64m")
    run("b", "--cpu-quota", "150000", "--cpu-period", "100000")
    run("c", "--memory", "32m", label=False)
    port = free_port()
    eddie_otel.configure(port=port)
    watcher = DockerWatcher(label=LABEL, interval=0.5).start()
    try:
        assert watcher.wait_ready(15)
        wait_until(lambda: len(exposition(port).get("docker_container_memory_usage_bytes", {})) == 2, 15, "usage")
        seen = exposition(port)
        # Exactly what docker inspect says; the unlabelled container is not there; b has no memory limit.
        assert seen["docker_container_cpu_limit"] == {"a": expected_limits("a")[0], "b": expected_limits("b")[0]}
        assert seen["docker_container_cpu_limit"] == {"a": 500.0, "b": 1500.0}
        assert seen["docker_container_memory_limit_bytes"] == {"a": 64 * MiB}
        assert "docker_elastic_adjustment_total" not in seen
        assert seen["docker_container_oom_kills_total"] == {"a": 0.0, "b": 0.0}
        # Memory as docker stats shows it: the same reading taken now, the container being idle.
        now = readings.usage(connect().stats(f"{RUN}-a"))
        assert now is not None
        wait_until(
            lambda: exposition(port)["docker_container_memory_usage_bytes"]["a"] == now.memory_bytes,
            5,
            "the idle container's memory",
        )
        assert 0 < exposition(port)["docker_container_cpu_usage_seconds_total"]["a"] <= now.cpu_seconds + 0.01

        # Elastic updates, up and down: one adjustment per changed limit.
        docker("update", "--cpus", "1", "--memory", "128m", "--memory-swap", "256m", f"{RUN}-a")
        wait_until(lambda: exposition(port)["docker_container_cpu_limit"]["a"] == 1000.0, 10, "cpu up")
        wait_until(lambda: exposition(port)["docker_container_memory_limit_bytes"]["a"] == 128 * MiB, 10, "mem up")
        docker("update", "--cpus", "0.25", f"{RUN}-a")
        docker("update", "--memory", "48m", f"{RUN}-a")
        wait_until(lambda: exposition(port)["docker_container_memory_limit_bytes"]["a"] == 48 * MiB, 10, "memory down")
        seen = exposition(port)
        assert seen["docker_container_cpu_limit"]["a"] == expected_limits("a")[0] == 250.0
        assert seen["docker_container_memory_limit_bytes"]["a"] == expected_limits("a")[1] == 48 * MiB
        assert seen["docker_elastic_adjustment_total"] == {
            "a:cpu_up": 1.0,
            "a:memory_up": 1.0,
            "a:cpu_down": 1.0,
            "a:memory_down": 1.0,
        }

        # A real OOM kill: 8 MiB and a string that doubles until the kernel kills the shell.
        run("oom", "--memory", "8m", "--memory-swap", "8m", command=("sh", "-c", "x=a; while true; do x=$x$x; done"))
        wait_until(
            lambda: exposition(port).get("docker_container_oom_kills_total", {}).get("oom") == 1.0, 30, "an OOM kill"
        )
        assert inspect("oom")["State"]["OOMKilled"] is True
        assert exposition(port)["docker_container_memory_limit_bytes"]["oom"] == 8 * MiB

        # Removed: every series of the container goes.
        docker("rm", "-f", f"{RUN}-a")
        wait_until(lambda: "a" not in exposition(port)["docker_container_cpu_limit"], 10, "a forgotten")
        assert not [key for values in exposition(port).values() for key in values if key.split(":")[0] == "a"]
        assert health(port)["status"] == "ok"
    finally:
        watcher.stop()

    # A new watcher (another process would start the same way) finds the running containers again: b, not the
    # OOM-killed one, which has exited; finding them counts no adjustment.
    eddie_otel.reset()
    eddie_otel.configure(port=port)
    with DockerWatcher(label=LABEL, interval=0.5) as again:
        assert again.wait_ready(15)
        seen = exposition(port)
        assert seen["docker_container_cpu_limit"] == {"b": 1500.0}
        assert "docker_container_memory_limit_bytes" not in seen
        assert "docker_elastic_adjustment_total" not in seen
        assert seen["docker_container_oom_kills_total"] == {"b": 0.0}


def test_an_engine_stopped_and_restarted_while_watched(engine: str) -> None:
    # Under /tmp rather than pytest's tmp_path: a unix socket's path has at most 107 bytes.
    root = Path("/tmp") / f"eddie-otel-dockerd-{os.getpid()}"
    daemon = start_daemon(root)
    try:
        ensure_image(daemon.host)
        docker("run", "-d", "--network", "none", "--name", "kept", "--label", "eddie.agent=1", "--cpus", "0.5",
               IMAGE, "sleep", "300", host=daemon.host)  # fmt: skip
        port = free_port()
        eddie_otel.configure(port=port)
        with DockerWatcher(docker_host=daemon.host, interval=0.5, first_retry=0.2, last_retry=1.0) as watcher:
            assert watcher.wait_ready(15)
            assert exposition(port)["docker_container_cpu_limit"] == {"kept": 500.0}
            daemon.stop()
            wait_until(lambda: health(port)["status"] == "degraded", 15, "degraded health")
            assert health(port)["docker"].startswith("engine unreachable: ")
            # Nothing wrong is recorded while it is away; the stopped container's limit stays.
            assert exposition(port)["docker_container_cpu_limit"] == {"kept": 500.0}
            daemon = start_daemon(root)
            wait_until(lambda: health(port)["status"] == "ok", 20, "healthy again")
            docker("update", "--cpus", "1", "kept", host=daemon.host)
            docker("start", "kept", host=daemon.host)
            wait_until(lambda: exposition(port)["docker_container_cpu_limit"] == {"kept": 1000.0}, 10, "caught up")
            assert exposition(port)["docker_elastic_adjustment_total"] == {"kept:cpu_up": 1.0}
            docker("rm", "-f", "kept", host=daemon.host)
            wait_until(lambda: "docker_container_cpu_limit" not in exposition(port), 10, "kept forgotten")
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def _watch_command(port: int, *extra: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    command = [*prefix, sys.executable, "-m", "eddie_otel.cli", "docker-watch", "--port", str(port), *extra]
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "EDDIE_OTEL_"))}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def test_the_command_serves_the_containers_and_stops_on_sigterm(engine: str) -> None:
    run("cli", "--memory", "16m")
    port = free_port()
    process = _watch_command(port, "--label", LABEL)
    try:
        wait_until(
            lambda: exposition_or_nothing(port).get("docker_container_memory_limit_bytes", {}).get("cli"), 20, "cli"
        )
        assert exposition(port)["docker_container_memory_limit_bytes"]["cli"] == 16 * MiB
        assert health(port)["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "watching" in out


def test_serve_docker_records_the_containers_in_the_metrics_service(engine: str) -> None:
    pytest.importorskip("fastapi")
    run("served", "--cpus", "0.75")
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "EDDIE_OTEL_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "eddie_otel.cli", "serve", "--docker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        # serve --docker watches the default label, eddie.agent: this container carries the module's label only.
        wait_until(lambda: (_health_or_none(port) or {}).get("status") == "ok", 20, "the service healthy")
        docker("run", "-d", "--network", "none", "--name", f"{RUN}-served-default", "--label", f"{LABEL}=1",
               "--label", "eddie.agent=1", "--cpus", "0.75", IMAGE, "sleep", "300")  # fmt: skip
        wait_until(
            lambda: exposition_or_nothing(port).get("docker_container_cpu_limit", {}).get("served-default") == 750.0,
            15,
            "the container in the service's exposition",
        )
        assert "served" not in exposition(port)["docker_container_cpu_limit"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "watching" in out


def test_a_socket_without_permission_is_a_degraded_health_and_one_line(engine: str, tmp_path: Path) -> None:
    """An engine socket the watcher may not open (as docker.sock is to a user outside the docker group).

    The socket belongs to another user with mode 0600, and the watcher runs without capabilities
    (setpriv), so that even as root it cannot override the file's permissions.
    """
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux), to run the watcher without capabilities")
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    os.chown(path, 65534, 65534)
    path.chmod(0o600)
    tmp_path.chmod(0o755)
    port = free_port()
    no_capabilities = ("setpriv", "--bounding-set=-all", "--inh-caps=-all")
    process = _watch_command(port, "--docker-host", f"unix://{path}", prefix=no_capabilities)
    try:
        wait_until(
            lambda: (_health_or_none(port) or {}).get("docker", "").startswith("engine unreachable"), 20, "degraded"
        )
        body = _health_or_none(port) or {}
        assert body["docker"] == "engine unreachable: permission denied on the engine's socket"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
        listener.close()
    assert process.returncode == 0, err
    assert err.count("permission denied") == 1, err


def _health_or_none(port: int) -> dict[str, Any] | None:
    try:
        return health(port)
    except OSError:
        return None
