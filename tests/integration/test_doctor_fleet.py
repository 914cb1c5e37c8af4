"""`eddie-otel doctor` against real processes on port 0: a fresh service, a misnamed URL, and a discovery directory."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from eddie_otel.cli import main
from tests.support.doctor import Announcing, doctor, fleet_doctor
from tests.support.prometheus_server import PrometheusServer

NOTE = "note: nothing has recorded a split yet, so there is no task_split_total (normal before the first task)"


@pytest.fixture
def discovery(tmp_path: Path) -> Path:
    directory = tmp_path / "discovery"
    directory.mkdir()
    return directory


@pytest.fixture
def started() -> Iterator[list[Announcing]]:
    """The processes a test starts; each stopped at the end."""
    processes: list[Announcing] = []
    yield processes
    for process in processes:
        process.stop()


def address_of(process: Announcing) -> str:
    [group] = json.loads(process.file.read_text(encoding="utf-8"))
    address: str = group["targets"][0]
    return address


def scraping(prometheus_binary: str, tmp_path: Path, discovery: Path, up: int) -> PrometheusServer:
    """A real Prometheus reading `discovery` with file_sd, once `up` of its targets are up."""
    server = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [], file_sd_dir=discovery)
    try:
        server.wait_until(lambda: len(server.query("up == 1")) == up, 60, "the announced targets are not up")
    except BaseException:
        server.stop()
        raise
    return server


def test_a_fresh_service_passes_with_notes(
    capsys: pytest.CaptureFixture[str],
    prometheus_binary: str,
    tmp_path: Path,
    discovery: Path,
    started: list[Announcing],
) -> None:
    started.append(Announcing(discovery))
    base = f"http://{address_of(started[0])}"
    server = scraping(prometheus_binary, tmp_path, discovery, 1)
    try:
        status, lines = doctor(capsys, "--metrics-url", base, "--prometheus-url", server.url)
    finally:
        server.stop()
    assert status == 0, lines
    assert lines[0] == f"[1/4] ok   metrics endpoint answers: {base}/metrics/prometheus answers; {NOTE}"
    assert lines[3] == f"[4/4] ok   Prometheus returns the series: 1 target_info series; {NOTE}"
    assert lines[4] == "all checks passed"


@pytest.mark.parametrize("path", ["/metrics/summary", "/metrics/health", "/metrics", "/events/split", "/docs"])
def test_a_url_of_another_route_is_a_one_line_error_naming_the_base(
    capsys: pytest.CaptureFixture[str], discovery: Path, started: list[Announcing], path: str
) -> None:
    started.append(Announcing(discovery))
    address = address_of(started[0])
    status = main(["doctor", "--metrics-url", f"http://admin:hunter2-secret@{address}{path}"])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err == (
        "eddie-otel doctor: error: --metrics-url must be the endpoint's base URL (like http://127.0.0.1:8503) "
        f"or its /metrics/prometheus URL, not http://{address}{path}; try http://{address}\n"
    )
    assert "hunter2-secret" not in err


def test_every_announced_process_is_checked_and_a_killed_one_is_reported_stale(
    capsys: pytest.CaptureFixture[str],
    prometheus_binary: str,
    tmp_path: Path,
    discovery: Path,
    started: list[Announcing],
) -> None:
    service = Announcing(discovery)
    recording = Announcing(discovery, splits=2)
    quiet = Announcing(discovery, splits=0)
    killed = Announcing(discovery, splits=1)
    started += [service, recording, quiet, killed]
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(timeout=10)
    assert killed.file.exists()

    status, lines = fleet_doctor(capsys, discovery)
    assert status == 1, lines
    assert lines[0] == "[1/4] FAIL every announced process answers"
    assert lines[1] == f"      1 of the 4 processes announced in {discovery} failed"
    by_file = {line.split("(", 1)[1].split(")", 1)[0]: line for line in lines[2:]}
    assert len(lines) == 6
    assert set(by_file) == {process.file.name for process in started}
    pid = killed.process.pid
    assert by_file[killed.file.name] == (
        f"      FAIL {address_of(killed)} ({killed.file.name}): stale: its process (pid {pid}) is gone; "
        f"remove {killed.file.name}"
    )
    served = f"      ok   {address_of(service)} ({service.file.name}): service eddie,"
    assert by_file[service.file.name].startswith(served)
    assert by_file[service.file.name].endswith(f"/metrics/prometheus and /metrics/health answer; {NOTE}")
    assert by_file[quiet.file.name].endswith(f"answer; {NOTE}")
    assert by_file[recording.file.name] == (
        f"      ok   {address_of(recording)} ({recording.file.name}): service eddie-agent, "
        f"pid {recording.process.pid}: /metrics/prometheus and /metrics/health answer"
    )

    killed.file.unlink()
    server = scraping(prometheus_binary, tmp_path, discovery, 3)
    try:
        status, lines = fleet_doctor(capsys, discovery, server.url)
    finally:
        server.stop()
    assert status == 0, lines
    assert lines[0].startswith("[1/4] ok   every announced process answers: 3 processes announced in ")
    assert [line.split()[0] for line in lines[1:4]] == ["ok", "ok", "ok"]
    assert lines[4] == "[2/4] ok   Prometheus scrapes every announced process: 3 targets up (job eddie)"
    assert lines[5].startswith("[3/4] ok   every target of the job is up, once: job 'eddie': 3 targets up, 3 ")
    assert lines[6] == "[4/4] ok   Prometheus returns the series: 1 task_split_total series"
    assert lines[7] == "all checks passed"


def test_an_announced_process_prometheus_does_not_scrape_fails_the_second_step(
    capsys: pytest.CaptureFixture[str],
    prometheus_binary: str,
    tmp_path: Path,
    discovery: Path,
    started: list[Announcing],
) -> None:
    started.append(Announcing(discovery, splits=1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [], file_sd_dir=elsewhere)
    try:
        server.wait_until(lambda: bool(server.api("targets") is not None), 30, "no Prometheus")
        status, lines = fleet_doctor(capsys, discovery, server.url)
    finally:
        server.stop()
    assert status == 1, lines
    assert lines[2] == "[2/4] FAIL Prometheus scrapes every announced process"
    assert f"does not scrape {address_of(started[0])}: give the scrape job file_sd_configs" in lines[3]
    assert "{" not in lines[3]


def test_an_empty_discovery_directory_says_how_processes_announce_themselves(
    capsys: pytest.CaptureFixture[str], discovery: Path
) -> None:
    status, lines = fleet_doctor(capsys, discovery)
    assert status == 1
    assert lines == [
        "[1/4] FAIL every announced process answers",
        f"      no process has announced itself in {discovery}: start the agents (or `eddie-otel serve`) "
        f"with EDDIE_OTEL_DISCOVERY_DIR={discovery}",
    ]
