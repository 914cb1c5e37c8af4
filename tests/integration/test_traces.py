"""Traces end to end: webhook spans over real HTTP, and Prometheus exemplars that lead to exported spans."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

import eddie_otel
from eddie_otel.runtime import Runtime
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from tests.support.prometheus_server import PrometheusServer
from tests.support.tracing import configure_traced, one, spans

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture
def serve() -> Iterator[Callable[[Runtime, int], httpx.Client]]:
    """Serve a runtime's app on a loopback port; the client of it, closed with the server after the test."""
    with ExitStack() as resources:

        def start(runtime: Runtime, port: int) -> httpx.Client:
            server = resources.enter_context(BackgroundServer(create_app(runtime), "127.0.0.1", port))
            return resources.enter_context(httpx.Client(base_url=server.url, timeout=10))

        yield start


def test_prometheus_exemplars_name_spans_that_were_exported(prometheus_binary: str, tmp_path: Path, port: int) -> None:
    _, exporter = configure_traced(port=port, serve=True)

    @eddie_otel.chunk(agent="worker", depth=1)
    def run_chunk() -> None:
        pass

    @eddie_otel.task(stage="codegen", agent="planner")
    def run_task() -> None:
        run_chunk()

    prometheus = PrometheusServer(
        prometheus_binary,
        tmp_path / "prometheus",
        [f"127.0.0.1:{port}"],
        extra_args=["--enable-feature=exemplar-storage"],
    )
    try:

        def exemplars() -> list[dict[str, str]]:
            run_task()
            now = time.time()
            found = []
            for name in ("task_execution_seconds_bucket", "chunk_execution_seconds_bucket"):
                for series in prometheus.api("query_exemplars", query=name, start=str(now - 600), end=str(now + 60)):
                    found.extend(exemplar["labels"] for exemplar in series["exemplars"])
            return found

        found: list[dict[str, str]] = []

        def stored() -> bool:
            found[:] = exemplars()
            names = {label.get("trace_id") for label in found}
            return len(found) >= 2 and len(names) >= 1

        prometheus.wait_until(stored, 30, "Prometheus stored no exemplars")
    finally:
        prometheus.stop()

    exported = {(f"{record.trace_id:032x}", f"{record.span_id:016x}") for record in spans(exporter)}
    for labels in found:
        assert (labels["trace_id"], labels["span_id"]) in exported


def test_a_webhook_with_a_traceparent_is_a_span_of_that_trace(
    serve: Callable[[Runtime, int], httpx.Client], port: int
) -> None:
    runtime, exporter = configure_traced()
    client = serve(runtime, port)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}

    answer = client.post(
        "/events",
        json={
            "events": [
                {
                    "type": "task_completed",
                    "stage": "codegen",
                    "duration_seconds": 2.5,
                    "success": True,
                    "agent": "go-agent",
                },
                {
                    "type": "chunk_executed",
                    "agent": "rust-agent",
                    "duration_seconds": 0.5,
                    "success": False,
                    "reason": "timeout",
                },
                {"type": "merge", "chunks_combined": 2, "duplicates_removed": 0},
            ]
        },
        headers=headers,
    )
    assert answer.status_code == 202

    finished = exporter.get_finished_spans()
    records = spans(exporter)
    task = one(records, "invoke_agent go-agent")
    chunk = one(records, "invoke_agent rust-agent")
    assert len(records) == 2
    for record in (task, chunk):
        assert (f"{record.trace_id:032x}", f"{record.parent_id:016x}") == (trace_id, parent_id)
    assert task.attributes == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "go-agent",
        "eddie.stage": "codegen",
    }
    assert (chunk.status, chunk.error_type) == ("ERROR", "timeout")
    durations = {span.name: (span.end_time or 0) - (span.start_time or 0) for span in finished}
    assert durations == {"invoke_agent go-agent": 2_500_000_000, "invoke_agent rust-agent": 500_000_000}

    body, _ = runtime.telemetry.exposition(OPENMETRICS)
    assert f'trace_id="{trace_id}"' in body.decode()


def test_a_webhook_without_a_traceparent_makes_no_span(
    serve: Callable[[Runtime, int], httpx.Client], port: int
) -> None:
    runtime, exporter = configure_traced()
    client = serve(runtime, port)
    answer = client.post("/events/task_completed", json={"stage": "codegen", "duration_seconds": 1.0, "success": True})
    assert answer.status_code == 202
    assert spans(exporter) == []
