"""Many processes: identity, fork and spawn, file discovery, and a real Prometheus summing them exactly."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import eddie_otel
from eddie_otel import runtime
from eddie_otel.discovery import is_stale
from tests.support.helpers import sample_value, wait_until
from tests.support.prometheus_server import PrometheusServer


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/prometheus", timeout=5) as response:
        return str(response.read().decode())


def instance_of(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("target_info{"):
            return line.split('service_instance_id="', 1)[1].split('"', 1)[0]
    raise AssertionError("no target_info")


def discovered(directory: Path) -> dict[str, dict[str, object]]:
    """Instance id -> target group, for every discovery file in `directory`."""
    found = {}
    for path in directory.glob("*.json"):
        (group,) = json.loads(path.read_text(encoding="utf-8"))
        found[group["labels"]["service_instance_id"]] = group
    return found


def test_every_process_has_an_instance_id_in_target_info(port: int) -> None:
    eddie_otel.configure(port=port)
    eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    assert instance_of(scrape(port)) == runtime.instance_id()


def test_a_forked_child_records_only_its_own_work_under_its_own_identity(tmp_path: Path) -> None:
    parent = eddie_otel.configure(port=0, discovery_dir=str(tmp_path))
    assert parent.server is not None
    for _ in range(10):
        eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees, then leave without running the parent's cleanup
        try:
            for _ in range(5):
                eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
            child = runtime.configured()
            assert child is not None
            assert child.server is not None
            text = scrape(child.server.port)
            files = sorted(path.name for path in tmp_path.glob("*.json"))
            started = time.monotonic()
            eddie_otel.shutdown()
            report = {
                "port": child.server.port if child.server else None,
                "combined": sample_value(text, "merge_chunks_combined_total"),
                "instance": instance_of(text),
                "files": files,
                "shutdown_seconds": time.monotonic() - started,
                "files_after": sorted(path.name for path in tmp_path.glob("*.json")),
            }
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = json.loads(pipe.read() or b"{}")
    os.waitpid(pid, 0)

    parent_text = scrape(parent.server.port)
    assert sample_value(parent_text, "merge_chunks_combined_total") == 10
    assert report["combined"] == 5
    assert report["instance"] != instance_of(parent_text)
    assert report["port"] != parent.server.port
    assert report["files"] == sorted([f"eddie-{instance_of(parent_text)}.json", f"eddie-{report['instance']}.json"])
    # A hang would never return; the bound is generous on purpose.
    assert report["shutdown_seconds"] < 1.0
    assert report["files_after"] == [f"eddie-{instance_of(parent_text)}.json"]


def _child_records(discovery: str, port: int, merges: int, ready: multiprocessing.synchronize.Event) -> None:
    eddie_otel.configure(port=port, discovery_dir=discovery)
    # Configuring again as before changes nothing, in a forked child too.
    first = runtime.configured()
    assert eddie_otel.configure(port=port, discovery_dir=discovery) is first
    for _ in range(merges):
        eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    ready.set()
    time.sleep(60)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_are_summed_exactly_by_prometheus(
    method: str, tmp_path: Path, prometheus_binary: str
) -> None:
    discovery = tmp_path / "targets"
    discovery.mkdir()
    parent = eddie_otel.configure(port=0, discovery_dir=str(discovery))
    assert parent.server is not None
    eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    context = multiprocessing.get_context(method)
    events = [context.Event() for _ in range(3)]
    # Every child asks for the parent's port: each takes a free one and announces it.
    children = [
        context.Process(target=_child_records, args=(str(discovery), parent.server.port, n + 1, events[n]))
        for n in range(3)
    ]
    for child in children:
        child.start()
    prometheus = None
    try:
        for event in events:
            assert event.wait(60), "a child did not start recording"
        wait_until(lambda: len(discovered(discovery)) == 4, 30, "not every process announced itself")
        prometheus = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [], file_sd_dir=discovery)
        prometheus.wait_until(
            lambda: len(prometheus.query('up{job="eddie"} == 1')) == 4, 60, "Prometheus did not find all 4 targets"
        )
        prometheus.wait_until(
            lambda: [r["value"][1] for r in prometheus.query("sum(merge_chunks_combined_total)")] == ["7"],
            30,
            "the fleet sum is not 1 + 1 + 2 + 3",
        )
        instances = {r["metric"]["service_instance_id"] for r in prometheus.query("target_info")}
        assert len(instances) == 4
    finally:
        for child in children:
            child.terminate()
            child.join(10)
        if prometheus is not None:
            prometheus.stop()


SPAWNED = """
import eddie_otel, sys
try:
    eddie_otel.configure(port=int(sys.argv[1]))
except eddie_otel.EddieOtelError as error:
    print("error:", error)
    sys.exit(3)
print("configured")
"""


def test_a_spawned_process_whose_port_is_taken_fails_loudly_without_discovery(port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        result = subprocess.run(
            [sys.executable, "-c", SPAWNED, str(port)], capture_output=True, text=True, timeout=60, env=_clean_env()
        )
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stdout
    assert "Traceback" not in result.stderr


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EDDIE_OTEL_"))}


AGENT = textwrap.dedent(
    """
    import sys, time, eddie_otel
    eddie_otel.configure(port=0, discovery_dir=sys.argv[1])
    for _ in range(int(sys.argv[2])):
        eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    print("ready", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def four_agents(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[str]]]]:
    discovery = tmp_path / "targets"
    agents = [
        subprocess.Popen(
            [sys.executable, "-c", AGENT, str(discovery), str(n + 1)],
            stdout=subprocess.PIPE,
            text=True,
            env=_clean_env(),
        )
        for n in range(4)
    ]
    try:
        for agent in agents:
            assert agent.stdout is not None
            assert agent.stdout.readline().strip() == "ready"
        yield discovery, agents
    finally:
        for agent in agents:
            agent.kill()
            agent.wait(10)


def test_four_agents_on_free_ports_found_by_file_sd_and_one_killed(
    four_agents: tuple[Path, list[subprocess.Popen[str]]], tmp_path: Path, prometheus_binary: str
) -> None:
    discovery, agents = four_agents
    assert len(discovered(discovery)) == 4
    prometheus = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [], file_sd_dir=discovery)
    try:
        prometheus.wait_until(
            lambda: [r["value"][1] for r in prometheus.query("sum(merge_chunks_combined_total)")] == ["10"],
            60,
            "the fleet sum is not 1 + 2 + 3 + 4",
        )
        victim = agents[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        # Killed, it could not remove its file: the file is stale, and the target goes down.
        stale = [path for path in discovery.glob("*.json") if is_stale(path)]
        assert len(stale) == 1
        prometheus.wait_until(
            lambda: len(prometheus.query('up{job="eddie"} == 0')) == 1, 30, "the killed agent's target is not down"
        )
    finally:
        prometheus.stop()


def test_the_next_process_removes_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "eddie-gone.json"
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(10)
    stale.write_text(
        json.dumps(
            [
                {
                    "targets": ["127.0.0.1:1"],
                    "labels": {
                        "service_name": "eddie",
                        "service_instance_id": "gone",
                        "__meta_eddie_hostname": socket.gethostname(),
                        "__meta_eddie_pid": str(process.pid),
                    },
                }
            ]
        )
    )
    assert is_stale(stale)
    eddie_otel.configure(port=0, discovery_dir=str(tmp_path))
    assert not stale.exists()
    assert list(discovered(tmp_path)) == [runtime.instance_id()]


def test_the_advertised_host_is_announced(tmp_path: Path) -> None:
    configured = eddie_otel.configure(port=0, discovery_dir=str(tmp_path), advertise_host="agent-7.internal")
    assert configured.server is not None
    (group,) = discovered(tmp_path).values()
    assert group["targets"] == [f"agent-7.internal:{configured.server.port}"]
    assert group["labels"] == {
        "service_name": "eddie",
        "service_instance_id": runtime.instance_id(),
        "__meta_eddie_hostname": socket.gethostname(),
        "__meta_eddie_pid": str(os.getpid()),
    }
    eddie_otel.shutdown()
    assert discovered(tmp_path) == {}
