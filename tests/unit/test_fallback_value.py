"""What the fallback is worth: split tasks rescued or failed, chunk time, queue waits, capacity, usage and cost."""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import eddie_otel
from eddie_otel import runtime
from eddie_otel.errors import ConfigurationError
from tests.support.helpers import sample_value


def exposition() -> str:
    return runtime.current().telemetry.exposition()[0].decode()


def value(name: str, **labels: str) -> float | None:
    try:
        return sample_value(exposition(), name, **labels)
    except KeyError:
        return None


@eddie_otel.chunk(agent="worker")
def work(seconds: float = 0.0) -> str:
    time.sleep(seconds)
    return "done"


def in_pool(fn: Any, *args: Any) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(eddie_otel.propagate(fn), *args).result()


# --------------------------------------------------------- split tasks


def test_a_split_task_that_succeeds_is_rescued_and_one_that_fails_is_failed(configured: object) -> None:
    @eddie_otel.task(stage="codegen", agent="lead")
    def task(split: bool, fail: bool) -> None:
        if split:
            assert eddie_otel.record_split(agent="lead", chunks=2, depth=1)
            assert eddie_otel.record_split(agent="lead", chunks=2, depth=2)  # twice: still one task
        if fail:
            raise RuntimeError("lost")

    task(True, False)
    task(True, False)
    with pytest.raises(RuntimeError):
        task(True, True)
    task(False, False)
    with pytest.raises(RuntimeError):
        task(False, True)
    assert value("task_fallback_total", stage="codegen", outcome="rescued") == 2
    assert value("task_fallback_total", stage="codegen", outcome="failed") == 1
    fallback = eddie_otel.summary()["fallback"]
    assert fallback["split_tasks"] == 3
    assert (fallback["rescued"], fallback["failed"]) == (2, 1)
    assert fallback["rescue_ratio"] == pytest.approx(2 / 3)


def test_a_split_inside_a_chunk_in_the_pool_marks_its_task(configured: object) -> None:
    @eddie_otel.chunk(agent="worker")
    def splitting_chunk() -> None:
        assert eddie_otel.record_split(agent="worker", chunks=2, depth=2)

    @eddie_otel.task(stage="review")
    def task() -> None:
        in_pool(splitting_chunk)

    task()
    assert value("task_fallback_total", stage="review", outcome="rescued") == 1
    # The chunk ran before any split: it is no fallback work and waited for no split.
    assert value("fallback_chunk_seconds_total", stage="review") is None
    assert value("chunk_queue_wait_seconds_count", agent="worker") is None


def test_a_split_outside_any_task_marks_nothing(configured: object) -> None:
    assert eddie_otel.record_split(agent="lead", chunks=2, depth=1)
    work()
    assert value("task_fallback_total", stage="default", outcome="rescued") is None
    assert value("fallback_chunk_seconds_total", stage="default") is None


def test_the_webhook_path_counts_a_split_task() -> None:
    eddie_otel.configure(serve=False)
    eddie_otel.record_task(stage="test", duration_seconds=3.0, success=False, split=True)
    eddie_otel.record_task(stage="test", duration_seconds=3.0, success=True)
    assert value("task_fallback_total", stage="test", outcome="failed") == 1
    assert value("task_fallback_total", stage="test", outcome="rescued") == 0


# --------------------------------------------------------- chunks of a split: seconds and queue wait


def test_chunks_after_a_split_count_their_seconds_and_their_wait(configured: object) -> None:
    @eddie_otel.task(stage="codegen")
    def task() -> None:
        eddie_otel.record_split(agent="lead", chunks=2, depth=1)
        time.sleep(0.05)  # the chunks wait in the queue
        in_pool(work, 0.02)
        in_pool(work, 0.02)

    task()
    assert value("fallback_chunk_seconds_total", stage="codegen") == pytest.approx(0.04, abs=0.03)
    assert value("chunk_queue_wait_seconds_count", agent="worker") == 2
    waited = value("chunk_queue_wait_seconds_sum", agent="worker") or 0.0
    assert 0.1 <= waited < 1.0  # at least 0.05 each, the second one more


def test_a_chunk_with_no_known_split_records_no_wait(configured: object) -> None:
    @eddie_otel.task(stage="codegen")
    def task() -> None:
        in_pool(work)
        work()

    task()
    work()
    assert value("chunk_queue_wait_seconds_count", agent="worker") is None
    assert value("chunk_execution_seconds_count", agent="worker") == 3


def test_queued_since_gives_the_wait_as_a_number_or_a_callable(configured: object) -> None:
    @eddie_otel.chunk(agent="fixed", queued_since=time.time() - 30)
    def fixed() -> None:
        return None

    @eddie_otel.chunk(agent="given", queued_since=lambda job: job["queued"])
    def given(job: dict[str, float]) -> None:
        return None

    fixed()
    given({"queued": time.time() - 120})
    assert value("chunk_queue_wait_seconds_bucket", agent="fixed", le="30.0") == 0
    assert value("chunk_queue_wait_seconds_bucket", agent="fixed", le="60.0") == 1
    assert value("chunk_queue_wait_seconds_bucket", agent="given", le="120.0") == 0
    assert value("chunk_queue_wait_seconds_bucket", agent="given", le="300.0") == 1


def test_a_bad_queued_since_is_refused_at_decoration_or_records_no_wait(
    configured: object, caplog: pytest.LogCaptureFixture
) -> None:
    for bad in (math.nan, -1.0, True, "1"):
        with pytest.raises(ValueError, match="queued_since"):
            eddie_otel.chunk(agent="a", queued_since=bad)  # type: ignore[arg-type]

    @eddie_otel.chunk(agent="broken", queued_since=lambda: math.inf)
    def broken() -> str:
        return "ran"

    assert broken() == "ran"
    assert value("chunk_queue_wait_seconds_count", agent="broken") is None
    assert value("chunk_execution_seconds_count", agent="broken") == 1
    assert "queued_since" in caplog.text


def test_a_carrier_taken_after_the_split_carries_it_to_another_process(configured: object) -> None:
    sent: dict[str, str] = {}

    @eddie_otel.task(stage="codegen")
    def task() -> None:
        assert "eddie-split" not in eddie_otel.carrier()
        eddie_otel.record_split(agent="lead", chunks=1, depth=1)
        sent.update(eddie_otel.carrier())

    @eddie_otel.chunk(agent="remote", carrier=lambda headers: headers)
    def remote(headers: dict[str, str]) -> None:
        eddie_otel.record_usage(agent="remote", model="m1", input_tokens=1, output_tokens=1, cost_usd=0.25)

    task()
    assert sent["eddie-split"].endswith(";stage=codegen")
    time.sleep(0.02)
    # Another thread with no context of the task: what the worker of another process sees.
    thread = threading.Thread(target=remote, args=(sent,))
    thread.start()
    thread.join()
    assert (value("chunk_queue_wait_seconds_sum", agent="remote") or 0) >= 0.02
    assert (value("fallback_chunk_seconds_total", stage="codegen") or 0) > 0
    assert value("fallback_cost_usd_total", stage="codegen") == 0.25


def test_record_chunk_takes_a_queue_wait_and_refuses_a_bad_one(configured: object) -> None:
    eddie_otel.record_chunk(agent="w", duration_seconds=1.0, queued_seconds=2.5)
    assert value("chunk_queue_wait_seconds_sum", agent="w") == 2.5
    for bad in (math.nan, -1.0, math.inf):
        with pytest.raises(ValueError, match="queued_seconds"):
            eddie_otel.record_chunk(agent="w", duration_seconds=1.0, queued_seconds=bad)
    assert value("chunk_queue_wait_seconds_count", agent="w") == 1
    assert value("chunk_execution_seconds_count", agent="w") == 1


# --------------------------------------------------------- capacity and last sight


def test_capacity_is_set_and_overwritten_and_saturation_follows(configured: object) -> None:
    started = threading.Event()
    release = threading.Event()

    @eddie_otel.task(agent="busy")
    def hold() -> None:
        started.set()
        release.wait(5)

    eddie_otel.set_agent_capacity(agent="busy", slots=4)
    eddie_otel.set_agent_capacity(agent="busy", slots=2)
    thread = threading.Thread(target=hold)
    thread.start()
    started.wait(5)
    load = eddie_otel.summary()["agents"]["busy"]
    release.set()
    thread.join()
    assert value("agent_capacity", agent="busy") == 2
    assert load["capacity"] == 2
    assert load["saturation"] == 0.5
    assert abs((load["last_seen"] or 0) - time.time()) < 60


@pytest.mark.parametrize("slots", [0, -1, 1.5, True, "2", 100_001])
def test_a_bad_capacity_is_refused_naming_slots(configured: object, slots: object) -> None:
    with pytest.raises(ValueError, match="slots"):
        eddie_otel.set_agent_capacity(agent="a", slots=slots)  # type: ignore[arg-type]
    assert value("agent_capacity", agent="a") is None
    assert value("agent_last_seen_timestamp_seconds", agent="a") is None


def test_everything_recorded_for_an_agent_moves_its_last_seen(configured: object) -> None:
    for record in (
        lambda: work(),
        lambda: eddie_otel.record_timeout(agent="worker", stage="s"),
        lambda: eddie_otel.record_split(agent="worker", chunks=2, depth=0),
        lambda: eddie_otel.record_chunk(agent="worker", duration_seconds=1.0),
        lambda: eddie_otel.record_usage(agent="worker", model="m", input_tokens=1, output_tokens=1),
        lambda: eddie_otel.set_agent_capacity(agent="worker", slots=1),
    ):
        eddie_otel.forget_agent("worker")
        record()
        seen = value("agent_last_seen_timestamp_seconds", agent="worker")
        assert seen is not None
        assert abs(seen - time.time()) < 60
    eddie_otel.forget_agent("worker")
    assert value("agent_last_seen_timestamp_seconds", agent="worker") is None
    assert "busy" not in eddie_otel.summary()["agents"]


# --------------------------------------------------------- usage and cost


def prices(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prices.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_usage_is_priced_from_the_table_and_an_unpriced_model_records_tokens_only(tmp_path: Path) -> None:
    eddie_otel.configure(serve=False, prices_file=prices(tmp_path, "gpt-4o: {input: 2.5, output: 10}\n"))
    eddie_otel.record_usage(agent="a", model="gpt-4o", input_tokens=1_000_000, output_tokens=100_000)
    eddie_otel.record_usage(agent="a", model="local", input_tokens=500, output_tokens=50)
    eddie_otel.record_usage(agent="a", model="local", input_tokens=1, output_tokens=1, cost_usd=0.125)
    assert value("agent_tokens_total", agent="a", model="gpt-4o", type="input") == 1_000_000
    assert value("agent_tokens_total", agent="a", model="gpt-4o", type="output") == 100_000
    assert value("agent_cost_usd_total", agent="a", model="gpt-4o") == pytest.approx(3.5)
    assert value("agent_tokens_total", agent="a", model="local", type="input") == 501
    assert value("agent_cost_usd_total", agent="a", model="local") == 0.125


def test_usage_without_a_table_and_without_a_cost_has_no_cost_series(configured: object) -> None:
    eddie_otel.record_usage(agent="a", model="m", input_tokens=3, output_tokens=4)
    assert value("agent_tokens_total", agent="a", model="m", type="output") == 4
    assert "agent_cost_usd" not in exposition()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"cost_usd": math.nan}, "cost_usd"),
        ({"cost_usd": -0.01}, "cost_usd"),
        ({"model": "gpt 4"}, "model"),
        ({"model": ""}, "model"),
        ({"agent": None}, "agent"),
    ],
)
def test_bad_usage_is_refused_naming_the_field(configured: object, changes: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"agent": "a", "model": "m", "input_tokens": 1, "output_tokens": 1, **changes}
    with pytest.raises(ValueError, match=field):
        eddie_otel.record_usage(**arguments)
    assert "agent_tokens" not in exposition()


def test_models_past_the_cap_are_other() -> None:
    eddie_otel.configure(serve=False, max_label_values=2)
    for model in ("m1", "m2", "m3"):
        eddie_otel.record_usage(agent="a", model=model, input_tokens=1, output_tokens=0, cost_usd=1.0)
    assert value("agent_tokens_total", agent="a", model="other", type="input") == 1
    assert value("agent_cost_usd_total", agent="a", model="other") == 1.0


def test_usage_inside_a_fallback_chunk_is_fallback_cost_and_goes_on_the_task_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    eddie_otel.configure(serve=False, tracer_provider=provider)

    @eddie_otel.chunk(agent="worker")
    def chunk() -> None:
        eddie_otel.record_usage(agent="worker", model="m", input_tokens=100, output_tokens=10, cost_usd=0.5)

    @eddie_otel.task(stage="codegen", agent="lead")
    def task() -> None:
        eddie_otel.record_usage(agent="lead", model="m", input_tokens=5, output_tokens=1, cost_usd=0.25)
        eddie_otel.record_split(agent="lead", chunks=2, depth=1)
        in_pool(chunk)
        in_pool(chunk)

    task()
    assert value("fallback_cost_usd_total", stage="codegen") == 1.0
    assert value("agent_cost_usd_total", agent="lead", model="m") == 0.25
    (task_span,) = [span for span in exporter.get_finished_spans() if span.name == "invoke_agent lead"]
    assert task_span.attributes is not None
    assert task_span.attributes["gen_ai.usage.input_tokens"] == 205
    assert task_span.attributes["gen_ai.usage.output_tokens"] == 21


# --------------------------------------------------------- the price table


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("gpt-4o: {input: 2.5}\n", 1, "no output"),
        ("a: {input: 1, output: 2}\nb: {input: 1, output: -2}\n", 2, "from 0"),
        ("a: {input: 1, output: 2}\n\nb:\n  input: 1\n  output: 2\n  cached: 3\n", 6, "unknown key 'cached'"),
        ("a: {input: 1, output: 2}\na: {input: 1, output: 2}\n", 2, "priced twice"),
        ("a: {input: one, output: 2}\n", 1, "must be a number"),
        ("a b: {input: 1, output: 2}\n", 1, "model name"),
        ("- a\n- b\n", 1, "mapping"),
        ("a: {input: 1, output: 2\n", 2, "not valid YAML"),
    ],
)
def test_a_bad_price_table_is_an_error_naming_the_variable_and_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int, message: str
) -> None:
    path = prices(tmp_path, text)
    with pytest.raises(ConfigurationError, match=rf"prices_file: .*line {line}: .*{message}"):
        eddie_otel.configure(serve=False, prices_file=path)
    monkeypatch.setenv("EDDIE_OTEL_PRICES_FILE", path)
    with pytest.raises(ConfigurationError, match=rf"EDDIE_OTEL_PRICES_FILE: .*line {line}: .*{message}"):
        eddie_otel.configure(serve=False)


def test_a_json_price_table_and_a_missing_file(tmp_path: Path) -> None:
    eddie_otel.configure(serve=False, prices_file=prices(tmp_path, '{"m": {"input": 1, "output": 3}}'))
    eddie_otel.record_usage(agent="a", model="m", input_tokens=1_000_000, output_tokens=0)
    assert value("agent_cost_usd_total", agent="a", model="m") == 1.0
    with pytest.raises(ConfigurationError, match="cannot read"):
        eddie_otel.configure(serve=False, prices_file=str(tmp_path / "missing.yml"))


def test_the_example_price_table_loads() -> None:
    from eddie_otel.prices import EXAMPLE, load

    table = load(str(EXAMPLE))
    assert table.models
    assert all(price.input >= 0 and price.output >= 0 for price in table.models.values())
