"""Spans of @task and @chunk, span events of the record calls, context across threads and processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace

import eddie_otel
from eddie_otel.errors import ConfigurationError
from tests.support.tracing import configure_traced, one, run_chunk_in_child, spans

TASK = "invoke_agent planner"
CHUNK = "invoke_agent worker"


def test_importing_eddie_otel_does_not_import_the_trace_sdk() -> None:
    code = "import sys, eddie_otel; print([m for m in sys.modules if m.startswith('opentelemetry.sdk.trace')])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_no_provider_and_no_exporter_means_no_tracing() -> None:
    runtime = eddie_otel.configure(serve=False)

    @eddie_otel.task(stage="codegen", agent="planner")
    def run() -> int:
        return 1

    assert run() == 1
    assert runtime.tracing is None
    assert runtime.recorder.site(True, "codegen", "planner").tracing is None


def test_an_unknown_traces_exporter_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER names an unknown exporter 'jaeger'"):
        eddie_otel.configure(serve=False)


def test_a_task_splits_into_chunks_in_a_thread_pool_and_another_process() -> None:
    _, exporter = configure_traced()

    @eddie_otel.chunk(agent="worker", depth=lambda n: 1)
    def run_chunk(n: int) -> int:
        if n == 2:
            raise TimeoutError(f"chunk {n}")
        return n

    @eddie_otel.task(stage="codegen", agent="planner")
    def run_task() -> list[int]:
        assert eddie_otel.record_split(agent="planner", chunks=4, depth=1)
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(eddie_otel.propagate(run_chunk), n) for n in range(3)]
        results = [future.result() for future in futures if future.exception() is None]
        with multiprocessing.get_context("spawn").Pool(1) as processes:
            remote = processes.apply(run_chunk_in_child, (eddie_otel.carrier(), 1))
        eddie_otel.record_merge(chunks_combined=3, duplicates_removed=1)
        return [*results, len(remote)], remote  # type: ignore[return-value]

    _, remote = run_task()

    local = spans(exporter)
    task = one(local, TASK)
    assert task.parent_id is None
    assert task.attributes == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "planner",
        "eddie.stage": "codegen",
    }
    assert task.status == "UNSET"
    assert task.events == [
        ("eddie.split", {"gen_ai.agent.name": "planner", "eddie.split.chunks": 4, "eddie.fallback.depth": 1}),
        ("eddie.merge", {"eddie.merge.chunks_combined": 3, "eddie.merge.duplicates_removed": 1}),
    ]
    chunks = [record for record in local if record.name == CHUNK]
    assert len(chunks) == 3
    for chunk in chunks:
        assert (chunk.trace_id, chunk.parent_id) == (task.trace_id, task.span_id)
        assert chunk.attributes["eddie.fallback.depth"] == 1
        assert chunk.attributes["eddie.stage"] == "chunk"
    failed = [chunk for chunk in chunks if chunk.status == "ERROR"]
    assert len(failed) == 1
    assert failed[0].error_type == "timeout"
    assert [name for name, _ in failed[0].events] == ["exception"]
    assert failed[0].events[0][1]["exception.type"] == "TimeoutError"

    (child,) = remote
    assert child.name == "invoke_agent remote-agent"
    assert (child.trace_id, child.parent_id) == (task.trace_id, task.span_id)
    assert child.attributes["eddie.fallback.depth"] == 1
    assert child.events == [("eddie.merge", {"eddie.merge.chunks_combined": 2, "eddie.merge.duplicates_removed": 1})]


def test_a_failure_sets_status_error_type_and_the_exception() -> None:
    _, exporter = configure_traced()

    @eddie_otel.task(stage="review")
    def run() -> None:
        raise ValueError("bad plan")

    with pytest.raises(ValueError, match="bad plan"):
        run()

    (span,) = spans(exporter)
    assert span.name == "invoke_agent"
    assert "gen_ai.agent.name" not in span.attributes
    assert (span.status, span.error_type) == ("ERROR", "ValueError")
    assert span.events[0][0] == "exception"
    assert span.events[0][1]["exception.message"] == "bad plan"


def test_a_refused_split_and_a_timeout_are_events_of_the_current_span() -> None:
    _, exporter = configure_traced(max_fallback_depth=2)

    @eddie_otel.chunk(agent="worker")
    def run() -> None:
        eddie_otel.record_timeout(agent="worker", stage="chunk", reason="deadline")
        assert not eddie_otel.record_split(agent="worker", chunks=2, depth=3)

    run()

    (span,) = spans(exporter)
    assert span.events == [
        ("eddie.timeout", {"gen_ai.agent.name": "worker", "eddie.stage": "chunk", "eddie.timeout.reason": "deadline"}),
        (
            "eddie.fallback_depth_exceeded",
            {
                "gen_ai.agent.name": "worker",
                "eddie.split.chunks": 2,
                "eddie.fallback.depth": 3,
                "eddie.fallback.max_depth": 2,
            },
        ),
    ]


def test_record_calls_outside_a_span_add_nothing() -> None:
    _, exporter = configure_traced()
    assert eddie_otel.record_split(agent="worker", chunks=2, depth=1)
    eddie_otel.record_merge(chunks_combined=2, duplicates_removed=0)
    assert spans(exporter) == []


def test_a_generator_span_covers_its_steps_and_ends_when_closed() -> None:
    _, exporter = configure_traced()

    @eddie_otel.chunk(agent="worker")
    def inner() -> int:
        return 1

    @eddie_otel.task(stage="stream", agent="planner")
    def stream() -> Iterator[int]:
        while True:
            yield inner()

    numbers = stream()
    assert next(numbers) == 1
    # Between steps the caller's context is current, not the generator's span.
    assert not trace.get_current_span().is_recording()
    assert next(numbers) == 1
    assert [record.name for record in spans(exporter)] == [CHUNK, CHUNK]
    numbers.close()

    records = spans(exporter)
    task = one(records, TASK)
    assert task.status == "UNSET"
    assert all(record.parent_id == task.span_id for record in records if record.name == CHUNK)


def test_an_async_generator_span_ends_when_it_fails() -> None:
    _, exporter = configure_traced()

    @eddie_otel.chunk(agent="worker")
    async def inner() -> int:
        return 1

    @eddie_otel.task(stage="stream", agent="planner")
    async def stream() -> AsyncIterator[int]:
        yield await inner()
        raise asyncio.TimeoutError

    async def consume() -> list[int]:
        return [number async for number in stream()]

    with pytest.raises(TimeoutError):
        asyncio.run(consume())

    records = spans(exporter)
    task = one(records, TASK)
    assert (task.status, task.error_type) == ("ERROR", "timeout")
    assert one(records, CHUNK).parent_id == task.span_id


def test_a_coroutine_span_is_the_parent_of_what_it_awaits() -> None:
    _, exporter = configure_traced()

    @eddie_otel.chunk(agent="worker", depth=2)
    async def inner() -> int:
        return 2

    @eddie_otel.task(stage="codegen", agent="planner")
    async def outer() -> int:
        return await inner() + await inner()

    assert asyncio.run(outer()) == 4

    records = spans(exporter)
    task = one(records, TASK)
    chunks = [record for record in records if record.name == CHUNK]
    assert [(chunk.parent_id, chunk.attributes["eddie.fallback.depth"]) for chunk in chunks] == [
        (task.span_id, 2),
        (task.span_id, 2),
    ]


def test_a_carrier_without_a_traceparent_keeps_the_current_parent() -> None:
    _, exporter = configure_traced()

    @eddie_otel.chunk(agent="worker", carrier=lambda headers: headers)
    def run(headers: dict[str, str]) -> None:
        pass

    @eddie_otel.task(stage="codegen", agent="planner")
    def outer() -> None:
        run({})

    outer()
    records = spans(exporter)
    assert one(records, CHUNK).parent_id == one(records, TASK).span_id


def test_carrier_is_empty_outside_a_span_and_w3c_inside() -> None:
    configure_traced()
    assert eddie_otel.carrier() == {}

    @eddie_otel.task(stage="codegen")
    def run() -> dict[str, str]:
        return eddie_otel.carrier()

    headers = run()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, len(trace_id), len(span_id), int(flags, 16) & 1) == ("00", 32, 16, 1)


def test_decorator_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="depth must be an integer or a callable"):
        eddie_otel.chunk(agent="worker", depth="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="carrier must be a callable"):
        eddie_otel.task(carrier={"traceparent": "x"})  # type: ignore[arg-type]
