"""A real Prometheus server scrapes an instrumented process and returns what was recorded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from eddie_otel.catalogue import METRICS, Kind
from tests.conftest import free_port
from tests.support.prometheus_server import PrometheusServer

# An agent process: configures eddie-otel on its own port, records a known set of
# events, then waits until the test closes its standard input.
AGENT = textwrap.dedent(
    """
    import sys
    import eddie_otel
    from tests.support.helpers import record_every_metric

    eddie_otel.configure(port=int(sys.argv[1]))
    record_every_metric()
    for seconds in (0.5, 1.5, 2.0, 3.0, 45.0, 70.0):
        eddie_otel.record_task(stage="review", duration_seconds=seconds)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture(scope="module")
def agent_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    yield port
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory, agent_port: int
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(prometheus_binary, tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{agent_port}"])
    yield server
    server.stop()


def test_prometheus_stores_every_metric_with_its_recorded_value(prometheus: PrometheusServer) -> None:
    prometheus.wait_until(
        lambda: (
            bool(prometheus.query('up{job="eddie"} == 1')) and bool(prometheus.query("merge_chunks_combined_total"))
        ),
        30,
        "the eddie target was not scraped",
    )
    expected = {
        'task_split_total{agent="python-agent"}': 1,
        'task_split_chunks_total{agent="python-agent"}': 3,
        'timeout_events_total{agent="python-agent",stage="codegen",reason="deadline"}': 1,
        'fallback_depth_exceeded_total{agent="python-agent"}': 1,
        'task_execution_seconds_count{stage="codegen"}': 2,
        'chunk_execution_seconds_count{agent="python-agent"}': 2,
        'task_success_total{stage="codegen"}': 1,
        'task_failure_total{stage="codegen",reason="ValueError"}': 1,
        'agent_active_tasks{agent="python-agent"}': 0,
        'agent_tasks_executed_total{agent="python-agent"}': 4,
        'chunk_failure_total{agent="python-agent",reason="crash"}': 1,
        'docker_container_cpu_limit{container="agent-1"}': 500,
        'docker_container_memory_limit_bytes{container="agent-1"}': 512 * 2**20,
        'docker_elastic_adjustment_total{container="agent-1",type="cpu_up"}': 1,
        'docker_container_cpu_usage_seconds_total{container="agent-1"}': 12.5,
        'docker_container_cpu_throttled_seconds_total{container="agent-1"}': 0.25,
        'docker_container_memory_usage_bytes{container="agent-1"}': 256 * 2**20,
        'docker_container_oom_kills_total{container="agent-1"}': 1,
        "merge_deduplication_total": 1,
        "merge_chunks_combined_total": 3,
        'task_fallback_total{stage="rescue",outcome="rescued"}': 1,
        'chunk_queue_wait_seconds_count{agent="rescue-agent"}': 1,
        'agent_capacity{agent="rescue-agent"}': 2,
        'agent_tokens_total{agent="rescue-agent",model="gpt-4o",type="input"}': 1000,
        'agent_tokens_total{agent="rescue-agent",model="gpt-4o",type="output"}': 200,
        'agent_cost_usd_total{agent="rescue-agent",model="gpt-4o"}': 0.5,
        'fallback_cost_usd_total{stage="rescue"}': 0.5,
        'task_timeout_seconds{stage="deploy"}': 30,
        # 50 successes of 0.5 s: the p99 times the margin 1.5, clamped at the 1 s minimum.
        'task_timeout_recommended_seconds{stage="deploy"}': 1,
    }
    # Measured, so known only to be there: the chunk's seconds and when each agent was last seen.
    measured = (
        'fallback_chunk_seconds_total{stage="rescue"}',
        'agent_last_seen_timestamp_seconds{agent="rescue-agent"}',
    )
    covered = {selector.split("{")[0].removesuffix("_count") for selector in (*expected, *measured)}
    assert covered == {m.prometheus_name for m in METRICS}
    for selector in measured:
        result = prometheus.query(selector)
        assert len(result) == 1, (selector, result)
        assert float(result[0]["value"][1]) > 0, (selector, result)
    for selector, value in expected.items():
        result = prometheus.query(selector)
        assert len(result) == 1, (selector, result)
        assert float(result[0]["value"][1]) == value, selector
        assert result[0]["metric"]["job"] == "eddie"
        assert not any(label.startswith("otel_scope") for label in result[0]["metric"])


def test_histogram_quantile_over_the_task_buckets(prometheus: PrometheusServer) -> None:
    prometheus.wait_until(
        lambda: bool(prometheus.query('task_execution_seconds_count{stage="review"}')),
        30,
        "task_execution_seconds was not scraped",
    )
    # Six review tasks: 0.5, 1.5, 2, 3, 45 and 70 s. The median falls in the (1, 2.5] bucket
    # holding the 2nd and 3rd of them: Prometheus interpolates 1 + 1.5 * (3 - 1) / 2 = 2.5.
    # Five of six are at most 60 s, so the 83rd percentile is exactly the 60 s boundary.
    quantile = 'histogram_quantile({q}, sum by (le) (task_execution_seconds_bucket{{stage="review"}}))'
    median = prometheus.query(quantile.format(q=0.5))
    assert float(median[0]["value"][1]) == pytest.approx(2.5)
    p83 = prometheus.query(quantile.format(q=5 / 6))
    assert float(p83[0]["value"][1]) == pytest.approx(60.0)
    buckets = prometheus.query('task_execution_seconds_bucket{stage="review",le="60.0"}')
    assert float(buckets[0]["value"][1]) == 5
    assert {m.kind for m in METRICS} == {Kind.COUNTER, Kind.GAUGE, Kind.HISTOGRAM}
