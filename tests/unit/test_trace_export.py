"""Exemplars from spans in the OpenMetrics exposition and in OTLP, and spans over OTLP/HTTP."""

from __future__ import annotations

import re

import pytest

import eddie_otel
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.tracing import configure_traced, spans

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
EXEMPLAR = re.compile(r'^(\w+_bucket)\{[^}]*\} \S+ # \{span_id="([0-9a-f]{16})",trace_id="([0-9a-f]{32})"\} (\S+)')


def _run_fallback() -> None:
    @eddie_otel.chunk(agent="worker")
    def run_chunk() -> int:
        return 1

    @eddie_otel.task(stage="codegen", agent="planner")
    def run_task() -> int:
        return run_chunk() + run_chunk()

    assert run_task() == 2


def test_openmetrics_buckets_carry_exemplars_of_the_spans_and_plain_text_does_not() -> None:
    runtime, exporter = configure_traced()
    _run_fallback()

    body, headers = runtime.telemetry.exposition(OPENMETRICS)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    found = [match.groups() for match in map(EXEMPLAR.match, body.decode().splitlines()) if match]
    by_id = {(f"{record.trace_id:032x}", f"{record.span_id:016x}"): record for record in spans(exporter)}
    names = {name for name, _, _, _ in found}
    assert names == {"task_execution_seconds_bucket", "chunk_execution_seconds_bucket"}
    for name, span_id, trace_id, _ in found:
        record = by_id[(trace_id, span_id)]
        assert record.attributes["eddie.stage"] == ("codegen" if name.startswith("task") else "chunk")

    text, _ = runtime.telemetry.exposition("text/plain")
    assert " # {" not in text.decode()


def test_no_exemplar_without_a_sampled_span() -> None:
    runtime = eddie_otel.configure(serve=False)
    _run_fallback()
    body, _ = runtime.telemetry.exposition(OPENMETRICS)
    assert "trace_id" not in body.decode()


def test_traces_exporter_otlp_sends_spans_and_metrics_carry_their_exemplars(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus,otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "eddie-traced")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    runtime = eddie_otel.configure(serve=False)
    assert runtime.tracing is not None
    _run_fallback()
    eddie_otel.shutdown()

    received = otlp_receiver.spans()
    assert sorted(span.name for _, span in received) == [
        "invoke_agent planner",
        "invoke_agent worker",
        "invoke_agent worker",
    ]
    for resource, _ in received:
        assert resource["service.name"] == "eddie-traced"
        assert resource["deployment.environment"] == "test"
    task = next(span for _, span in received if span.name == "invoke_agent planner")
    assert {kv.key: kv.value.string_value for kv in task.attributes} == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "planner",
        "eddie.stage": "codegen",
    }
    assert task.kind == task.SPAN_KIND_INTERNAL
    for _, span in received:
        if span.name == "invoke_agent worker":
            assert (span.trace_id, span.parent_span_id) == (task.trace_id, task.span_id)

    exemplars = otlp_receiver.histogram_exemplars("task.execution")
    assert [(exemplar.trace_id, exemplar.span_id) for exemplar in exemplars] == [(task.trace_id, task.span_id)]
    chunk_ids = {(span.trace_id, span.span_id) for _, span in received if span.name == "invoke_agent worker"}
    chunk_exemplars = otlp_receiver.histogram_exemplars("chunk.execution")
    assert chunk_exemplars
    assert {(exemplar.trace_id, exemplar.span_id) for exemplar in chunk_exemplars} <= chunk_ids
