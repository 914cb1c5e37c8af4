"""The fleet summary counts work done by series that are new, short-lived or bursty.

Eddie's series appear only when something is first recorded, already holding their first
value: `increase()` sees no step there. These processes are scraped before they do
anything, then each records a known workload once; the fleet's windows, latency and
indicators must equal what the processes themselves report.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eddie_otel.cli import main
from eddie_otel.ops.dashboard import build_dashboard, expand_variables, panel_queries
from eddie_otel.ops.fleet import fleet_summary
from tests.support.agents import ScriptedAgent
from tests.support.prometheus_server import PrometheusServer

# Each process, once told to: 3 tasks succeed and 2 fail on agent "a" (stage codegen),
# 2 chunks on agent "b", 3 timeouts, one merge of 10 results with 1 duplicate, one split.
_SCRIPT = """
import sys, eddie_otel
eddie_otel.configure(service_name="eddie-agent", port=int(sys.argv[1]))
print("ready", flush=True)
for line in sys.stdin:
    for _ in range(3):
        eddie_otel.record_task(stage="codegen", duration_seconds=0.5, agent="a")
    for _ in range(2):
        eddie_otel.record_task(stage="codegen", duration_seconds=2.0, success=False, reason="ValueError", agent="a")
    for _ in range(2):
        eddie_otel.record_chunk(agent="b", duration_seconds=1.0)
    for _ in range(3):
        eddie_otel.record_timeout(agent="a", stage="codegen", reason="deadline")
    eddie_otel.record_merge(chunks_combined=10, duplicates_removed=1)
    eddie_otel.record_split(agent="a", chunks=3, depth=1)
    print("done", flush=True)
"""
# What one round records, by the summary's counter keys (every other counter: nothing).
ROUND = {
    "task_success": 3,
    "task_failure": 2,
    "timeout_events": 3,
    "merge_chunks_combined": 10,
    "merge_deduplication": 1,
    "task_split": 1,
    "task_split_chunks": 3,
    "agent_tasks_executed": 7,
}


def _expected(counts: dict[str, Any], processes: int) -> dict[str, int]:
    """Every counter of `counts` as `processes` rounds would count it."""
    return {key: processes * ROUND.get(key, 0) for key in counts}


class IdleAgent(ScriptedAgent):
    """An agent process that records nothing until told to work (`go`: one round)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(_SCRIPT, [], workdir)

    def work(self) -> None:
        """Record one round and wait until it is recorded."""
        self.go()

    def own_summary(self) -> Any:
        """The process's own GET /metrics/summary."""
        with urllib.request.urlopen(f"http://{self.address}/metrics/summary", timeout=10) as response:
            return json.load(response)


def _scraped(server: PrometheusServer, agents: list[IdleAgent], rounds: int) -> bool:
    """Whether Prometheus holds every agent's latest round (one agent's task_success_total = 3 · rounds)."""
    addresses = "|".join(agent.address for agent in agents)
    answer = server.query(f'count(task_success_total{{instance=~"{addresses}"}} == {3 * rounds})')
    return bool(answer) and answer[0]["value"][1] == str(len(agents))


@pytest.fixture(scope="module")
def idle_fleet(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, list[IdleAgent]]]:
    """Three agents scraped for 8 s before any work, then one round each, scraped."""
    workdir = tmp_path_factory.mktemp("idle-fleet")
    agents: list[IdleAgent] = []
    server = None
    try:
        agents = [IdleAgent(workdir) for _ in range(3)]
        server = PrometheusServer(prometheus_binary, workdir / "prometheus", [a.address for a in agents])
        server.wait_until(lambda: len(server.query("target_info")) == len(agents), 30, "agents not scraped")
        server.wait_until(
            lambda: float(server.query("min(count_over_time(target_info[1m]))")[0]["value"][1]) >= 8, 30, "no 8 scrapes"
        )
        for agent in agents:
            agent.work()
        server.wait_until(lambda: _scraped(server, agents, 1), 30, "the work was not scraped")
        yield server, agents
    finally:
        if server is not None:
            server.stop()
        for agent in agents:
            agent.stop()


def _indicators(summary: Any) -> dict[str, Any]:
    return {item["name"]: item for item in summary["indicators"]}


def test_windows_count_exactly_what_new_series_recorded(idle_fleet: tuple[PrometheusServer, list[IdleAgent]]) -> None:
    server, agents = idle_fleet
    result = fleet_summary(server.url, "eddie")
    n = len(agents)
    for name in ("5m", "1h"):
        counts = result["windows"][name]["counts"]
        assert counts == _expected(counts, n), name
    # Each process counted the same in its own windows.
    for agent in agents:
        own = agent.own_summary()
        assert {key: own["windows"]["1h"]["counts"][key] for key in ROUND} == ROUND


def test_indicators_and_latency_of_new_series_are_what_the_processes_report(
    idle_fleet: tuple[PrometheusServer, list[IdleAgent]],
) -> None:
    server, agents = idle_fleet
    result = fleet_summary(server.url, "eddie")
    indicators = _indicators(result)
    own = _indicators(agents[0].own_summary())
    assert own["success_rate"]["value"] == 0.6
    assert own["timeouts_per_hour"]["value"] == 3
    assert indicators["success_rate"]["value"] == pytest.approx(0.6)
    assert indicators["success_rate"]["ok"] is False
    # Three processes, 3 timeouts each, in the hour.
    assert indicators["timeouts_per_hour"]["value"] == pytest.approx(3 * len(agents))
    assert indicators["timeouts_per_hour"]["ok"] is False
    assert indicators["merge_efficiency"]["value"] == pytest.approx(0.9)
    # Agent a: 5 tasks a process; agent b: 2 chunks.
    assert indicators["agent_balance_ratio"]["value"] == pytest.approx(2.5)
    assert indicators["latency_p99_seconds"]["value"] is not None
    assert indicators["latency_p99_seconds"]["ok"] is True
    assert result["latency"]["codegen"]["samples"] == 5 * len(agents)
    assert 0 < result["latency"]["codegen"]["p50"] <= result["latency"]["codegen"]["p99"] <= 2.5


def test_the_dashboard_stat_panels_agree_with_the_fleet_summary(
    idle_fleet: tuple[PrometheusServer, list[IdleAgent]],
) -> None:
    server, _ = idle_fleet
    indicators = _indicators(fleet_summary(server.url, "eddie"))
    titles = {
        "Success rate": "success_rate",
        "Latency p99": "latency_p99_seconds",
        "Timeouts per hour": "timeouts_per_hour",
        "Merge efficiency": "merge_efficiency",
        "Agent balance": "agent_balance_ratio",
    }
    stats: dict[str, str] = {}
    for title, expr in panel_queries(build_dashboard()):
        # The stat panels come first; graphs further down share some of their titles.
        stats.setdefault(title, expr)
    for title, name in titles.items():
        answer = server.query(expand_variables(stats[title], range_="1h"))
        assert answer, title
        assert float(answer[0]["value"][1]) == pytest.approx(indicators[name]["value"]), title


def test_processes_that_start_work_once_and_stop_are_counted(prometheus_binary: str, tmp_path: Path) -> None:
    agents: list[IdleAgent] = []
    server = None
    try:
        agents = [IdleAgent(tmp_path) for _ in range(2)]
        server = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [a.address for a in agents])
        # The first works before its first scrape, the second after it.
        agents[0].work()
        server.wait_until(lambda: len(server.query("target_info")) == len(agents), 30, "agents not scraped")
        agents[1].work()
        server.wait_until(lambda: _scraped(server, agents, 1), 30, "the work was not scraped")
        for agent in agents:
            agent.stop()
        server.wait_until(lambda: not server.query("up == 1"), 30, "the agents are still up")
        result = fleet_summary(server.url, "eddie")
        assert {item["health"] for item in result["instances"]} == {"down"}
        for name in ("5m", "1h"):
            counts = result["windows"][name]["counts"]
            assert counts == _expected(counts, 2), name
        indicators = _indicators(result)
        assert indicators["success_rate"]["value"] == pytest.approx(0.6)
        assert indicators["timeouts_per_hour"]["value"] == 6
        assert result["latency"]["codegen"]["samples"] == 10
    finally:
        if server is not None:
            server.stop()
        for agent in agents:
            agent.stop()


def test_without_a_job_a_prometheus_with_no_eddie_target_is_a_warning_naming_its_jobs(
    prometheus_binary: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = PrometheusServer(prometheus_binary, tmp_path / "prometheus", ["127.0.0.1:1"], job="other")
    try:
        server.wait_until(lambda: bool(server.query("up")), 30, "the target was not scraped")
        assert main(["summary", "--prometheus-url", server.url]) == 0
    finally:
        server.stop()
    out, err = capsys.readouterr()
    assert json.loads(out)["instances"] == []
    assert err == (
        f"eddie-otel summary: warning: no target of Prometheus at {server.url} exposes target_info; "
        "the jobs it scrapes: other\n"
    )
