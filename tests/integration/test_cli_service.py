"""`eddie-otel serve` and `eddie-otel demo` as a user runs them: real processes, real ports, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eddie_otel.catalogue import METRICS

SCRIPT = Path(sys.executable).with_name("eddie-otel")
MODULE = [sys.executable, "-m", "eddie_otel"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m eddie_otel ARGS`, finished."""
    return subprocess.run([*MODULE, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def taken(port: int) -> Iterator[int]:
    """A loopback port something is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield port


def wait_until_healthy(process: subprocess.Popen[str], port: int, deadline_seconds: float = 20) -> None:
    """Poll /metrics/health until it answers; fail if the process ends or the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"the service did not answer on port {port} within {deadline_seconds} s")


@pytest.mark.parametrize(
    ("command", "options"),
    [("serve", ["--host", "--port"]), ("demo", ["--host", "--port", "--duration", "--seed", "--agents"])],
)
def test_help(command: str, options: list[str]) -> None:
    for argv in ([str(SCRIPT)], MODULE):
        result = subprocess.run([*argv, command, "--help"], capture_output=True, text=True, timeout=60, check=False)

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: eddie-otel {command} ")
        for option in options:
            assert option in result.stdout


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_port_taken_is_one_line_not_a_traceback(taken: int, command: str) -> None:
    result = run(command, "--host", "127.0.0.1", "--port", str(taken))

    assert result.returncode == 1
    assert result.stderr == (
        f"eddie-otel {command}: cannot listen on 127.0.0.1:{taken}: the port is already in use; "
        "choose another with --port (or OTEL_EXPORTER_PROMETHEUS_PORT)\n"
    )


def test_invalid_environment_names_the_variable(port: int) -> None:
    result = subprocess.run(
        [*MODULE, "serve", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "EDDIE_OTEL_MAX_BODY_BYTES": "tiny"},
    )

    assert result.returncode == 1
    assert result.stderr == "eddie-otel serve: EDDIE_OTEL_MAX_BODY_BYTES must be an integer, not 'tiny'\n"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(port: int, stop: signal.Signals) -> None:
    process = subprocess.Popen(
        [*MODULE, "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_healthy(process, port)
        accepted = httpx.post(
            f"http://127.0.0.1:{port}/events/merge", json={"chunks_combined": 2, "duplicates_removed": 0}
        )
        assert accepted.status_code == 202
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0
    assert stderr == ""
    assert stdout.splitlines() == [
        f"eddie-otel: serving on http://127.0.0.1:{port} (metrics http://127.0.0.1:{port}/metrics/prometheus, "
        f"summary http://127.0.0.1:{port}/metrics/summary, health http://127.0.0.1:{port}/metrics/health); "
        "Ctrl-C stops",
        "eddie-otel: stopped",
    ]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the port was released


def _activity(text: str, seen: dict[str, float]) -> None:
    """Update `seen` with the largest value of each catalogue metric in a text exposition."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            metric = family.name if family.type != "counter" else family.name + "_total"
            if family.type == "histogram" and not sample.name.endswith("_count"):
                continue
            seen[metric] = max(seen.get(metric, 0.0), sample.value)


def test_demo_drives_every_metric(port: int) -> None:
    duration = 8
    process = subprocess.Popen(
        [*MODULE, "demo", "--port", str(port), "--duration", str(duration), "--seed", "7", "--agents", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, float] = {}
    wanted = {metric.prometheus_name for metric in METRICS}
    try:
        wait_until_healthy(process, port)
        # The demo promises every metric within 10 s; it runs for 8, so poll while it lives.
        while process.poll() is None and not all(seen.get(name, 0) > 0 for name in wanted):
            try:
                _activity(httpx.get(f"http://127.0.0.1:{port}/metrics/prometheus", timeout=2).text, seen)
            except httpx.TransportError:
                break
            time.sleep(0.1)
        summary = httpx.get(f"http://127.0.0.1:{port}/metrics/summary", timeout=2).json()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert {name for name in wanted if seen.get(name, 0) <= 0} == set()
    assert [item["name"] for item in summary["indicators"]] == [
        "success_rate",
        "latency_p99_seconds",
        "timeouts_per_hour",
        "merge_efficiency",
        "agent_balance_ratio",
    ]
    assert summary["totals"]["task_success"] > 0
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    lines = stdout.splitlines()
    assert lines[0] == f"eddie-otel demo: open http://127.0.0.1:{port}/ to watch it live"
    for path in ("/metrics/prometheus", "/metrics/summary", "/metrics/health"):
        assert any(line.strip().endswith(f"http://127.0.0.1:{port}{path}") for line in lines), path
    progress = [line for line in lines if line.startswith("eddie-otel demo: ") and " s  tasks=" in line]
    assert progress, stdout
    assert lines[-1].startswith(f"eddie-otel demo: stopped after {duration} s; tasks=")


def test_demo_stops_on_sigterm(port: int) -> None:
    process = subprocess.Popen(
        [*MODULE, "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_healthy(process, port)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert "eddie-otel demo: running; Ctrl-C stops" in stdout.splitlines()
    assert stdout.splitlines()[-1].startswith("eddie-otel demo: stopped after ")


def test_demo_refuses_too_many_agents(port: int) -> None:
    result = run("demo", "--port", str(port), "--agents", "101")

    assert result.returncode == 1
    assert result.stderr == "eddie-otel demo: agents must be between 1 and 100, not 101\n"
