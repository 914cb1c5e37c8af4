"""The exposition as a scraper sees it: exact names, types and labels of docs/contract.md §2, from the real endpoint."""

from __future__ import annotations

import gzip
import socket
import urllib.error
import urllib.request

import pytest

import eddie_otel
from eddie_otel.catalogue import DURATION_BUCKETS, METRICS, Kind
from tests.support.helpers import families, record_every_metric, sample_value, scrape

# docs/contract.md §2, written out by hand on purpose: the catalogue is checked against it,
# not against itself.
CONTRACT = {
    "task_split_total": ("counter", {"agent"}),
    "task_split_chunks_total": ("counter", {"agent"}),
    "timeout_events_total": ("counter", {"agent", "stage", "reason"}),
    "fallback_depth_exceeded_total": ("counter", {"agent"}),
    "task_execution_seconds": ("histogram", {"stage"}),
    "chunk_execution_seconds": ("histogram", {"agent"}),
    "task_success_total": ("counter", {"stage"}),
    "task_failure_total": ("counter", {"stage", "reason"}),
    "agent_active_tasks": ("gauge", {"agent"}),
    "agent_tasks_executed_total": ("counter", {"agent"}),
    "docker_container_cpu_limit": ("gauge", {"container"}),
    "docker_container_memory_limit_bytes": ("gauge", {"container"}),
    "docker_elastic_adjustment_total": ("counter", {"container", "type"}),
    "docker_container_cpu_usage_seconds_total": ("counter", {"container"}),
    "docker_container_cpu_throttled_seconds_total": ("counter", {"container"}),
    "docker_container_memory_usage_bytes": ("gauge", {"container"}),
    "docker_container_oom_kills_total": ("counter", {"container"}),
    "merge_deduplication_total": ("counter", set()),
    "merge_chunks_combined_total": ("counter", set()),
    "chunk_failure_total": ("counter", {"agent", "reason"}),
    "task_fallback_total": ("counter", {"stage", "outcome"}),
    "fallback_chunk_seconds_total": ("counter", {"stage"}),
    "fallback_cost_usd_total": ("counter", {"stage"}),
    "chunk_queue_wait_seconds": ("histogram", {"agent"}),
    "agent_capacity": ("gauge", {"agent"}),
    "agent_last_seen_timestamp_seconds": ("gauge", {"agent"}),
    "agent_tokens_total": ("counter", {"agent", "model", "type"}),
    "agent_cost_usd_total": ("counter", {"agent", "model"}),
    "task_timeout_seconds": ("gauge", {"stage"}),
    "task_timeout_recommended_seconds": ("gauge", {"stage"}),
}


def test_catalogue_matches_the_contract() -> None:
    assert {m.prometheus_name: (m.kind.value, set(m.labels)) for m in METRICS} == CONTRACT


def test_endpoint_exposes_every_metric_with_exact_name_type_and_labels(port: int) -> None:
    eddie_otel.configure(port=port)
    record_every_metric()
    body, headers = scrape(port)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    exposed = families(body.decode())
    for name, (kind, labels) in CONTRACT.items():
        # The text parser names a counter family without its _total suffix.
        family = name.removesuffix("_total") if kind == "counter" else name
        assert family in exposed, f"{name} missing from the exposition"
        exposed_kind, samples = exposed[family]
        assert exposed_kind == kind, name
        assert samples, name
        for sample in samples:
            extra = {"le"} if sample.name.endswith("_bucket") else set()
            assert set(sample.labels) == labels | extra, (sample.name, sample.labels)
    text = body.decode()
    assert "_total_total" not in text
    assert "_seconds_seconds" not in text
    assert "otel_scope_" not in text
    assert "target_info{" in text


def test_histograms_use_seconds_buckets_with_a_boundary_at_60(configured: object) -> None:
    record_every_metric()
    text = eddie_otel.runtime.current().telemetry.exposition()[0].decode()
    for metric in (m for m in METRICS if m.kind is Kind.HISTOGRAM):
        bounds = list(
            dict.fromkeys(
                sample.labels["le"]
                for _, samples in [families(text)[metric.prometheus_name]]
                for sample in samples
                if sample.name.endswith("_bucket")
            )
        )
        assert bounds[:-1] == [str(b) for b in metric.buckets or ()]
        assert [str(b) for b in DURATION_BUCKETS] == [b for b in bounds if float(b) in DURATION_BUCKETS]
        assert bounds[-1] == "+Inf"
    assert "60.0" in [str(b) for b in DURATION_BUCKETS]
    assert DURATION_BUCKETS[0] <= 0.01
    assert DURATION_BUCKETS[-1] >= 1200


def test_recorded_values_are_exact(configured: object) -> None:
    record_every_metric()
    text = eddie_otel.runtime.current().telemetry.exposition()[0].decode()
    assert sample_value(text, "task_success_total", stage="codegen") == 1
    assert sample_value(text, "task_failure_total", stage="codegen", reason="ValueError") == 1
    assert sample_value(text, "task_execution_seconds_count", stage="codegen") == 2
    assert sample_value(text, "chunk_execution_seconds_count", agent="python-agent") == 2
    assert sample_value(text, "agent_tasks_executed_total", agent="python-agent") == 4
    assert sample_value(text, "chunk_failure_total", agent="python-agent", reason="crash") == 1
    assert sample_value(text, "agent_active_tasks", agent="python-agent") == 0
    assert sample_value(text, "task_split_total", agent="python-agent") == 1
    assert sample_value(text, "task_split_chunks_total", agent="python-agent") == 3
    assert sample_value(text, "fallback_depth_exceeded_total", agent="python-agent") == 1
    assert sample_value(text, "timeout_events_total", agent="python-agent", stage="codegen", reason="deadline") == 1
    assert sample_value(text, "merge_chunks_combined_total") == 3
    assert sample_value(text, "merge_deduplication_total") == 1
    assert sample_value(text, "docker_container_cpu_limit", container="agent-1") == 500
    assert sample_value(text, "docker_container_memory_limit_bytes", container="agent-1") == 512 * 2**20
    assert sample_value(text, "docker_elastic_adjustment_total", container="agent-1", type="cpu_up") == 1


def test_endpoint_speaks_openmetrics_and_gzip_when_asked(port: int) -> None:
    eddie_otel.configure(port=port)
    record_every_metric()
    body, headers = scrape(port, accept="application/openmetrics-text; version=1.0.0")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")
    zipped, headers = scrape(port, encoding="gzip")
    assert headers["Content-Encoding"] == "gzip"
    assert b"task_split_total" in gzip.decompress(zipped)


def test_endpoint_answers_only_its_path(port: int) -> None:
    eddie_otel.configure(port=port)
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert error.value.code == 404


def test_resource_comes_from_otel_variables(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "eddie-test")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=agents")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))
    eddie_otel.configure()
    record_every_metric()
    body, _ = scrape(port)
    info = families(body.decode())["target_info"][1][0].labels
    assert info["service_name"] == "eddie-test"
    assert info["deployment_environment"] == "staging"
    assert info["team"] == "agents"


def test_port_in_use_is_a_clear_error(port: int) -> None:
    # Another process holds the port.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        with pytest.raises(eddie_otel.EddieOtelError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            eddie_otel.configure(port=port)
