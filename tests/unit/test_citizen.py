"""A good OpenTelemetry citizen: public API only, other providers untouched, a borrowed provider's settings
applied to eddie's series, and eddie's own endpoint beyond the reach of other libraries."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.trace import TracerProvider

import eddie_otel
from eddie_otel import runtime
from eddie_otel.catalogue import by_prometheus_name
from tests.support.helpers import families, record_every_metric

PACKAGE = Path(eddie_otel.__file__).resolve().parent
SPLIT = by_prometheus_name("task_split_total")
TIMEOUTS = by_prometheus_name("timeout_events_total")
TASK = by_prometheus_name("task_execution_seconds")
CHUNK = by_prometheus_name("chunk_execution_seconds")


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text("utf-8"), str(path))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_package_imports_no_private_opentelemetry_module() -> None:
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            modules: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if module.startswith("opentelemetry") and any(_private(part) for part in module.split(".")):
                    found.append(f"{path.name}:{node.lineno} {module}")
    assert found == []


def test_the_package_touches_no_underscore_attribute_but_its_own() -> None:
    # Every underscore name the package defines itself (methods, attributes, module names), and the one
    # the standard library gives no other name for (argparse's type of add_subparsers()).
    own: set[str] = {path.stem for path in PACKAGE.rglob("*.py")} | {"_SubParsersAction"}
    for _, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                own.add(node.value)  # __slots__ entries
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
            ):
                found.append(f"{path.name}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    assert found == []


def test_the_scan_sees_a_private_sdk_attribute(tmp_path: Path) -> None:
    # The scan above can fail: the bridge's old reach into the provider is caught.
    tree = ast.parse("readers = provider._all_metric_readers\n")
    (attribute,) = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute)]
    assert _private(attribute.attr)
    own = {path.stem for path in PACKAGE.rglob("*.py")}
    assert attribute.attr not in own


def _points(data: MetricsData | None, name: str) -> list[object]:
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def _names(data: MetricsData | None) -> set[str]:
    assert data is not None
    return {metric.name for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics}


@pytest.fixture
def app_provider() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("app").create_counter("app.requests").add(5)
    yield provider, reader
    eddie_otel.reset()
    provider.shutdown()


def test_an_apps_own_provider_is_untouched_by_configure_shutdown_and_configure_again(
    app_provider: tuple[MeterProvider, InMemoryMetricReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, reader = app_provider
    # The app's provider is its own (not installed globally): eddie builds its own for its exporters.
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus,console")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    for _ in range(2):
        eddie_otel.configure(serve=False)
        record_every_metric()
        data = reader.get_metrics_data()
        assert _names(data) == {"app.requests"}
        assert [point.value for point in _points(data, "app.requests")] == [5]  # type: ignore[attr-defined]
        eddie_otel.shutdown()
        assert _names(reader.get_metrics_data()) == {"app.requests"}


def test_a_borrowed_provider_gets_instruments_only_and_keeps_working_after_shutdown(
    app_provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    provider, reader = app_provider
    eddie_otel.configure(meter_provider=provider)
    telemetry = runtime.current().telemetry
    # No reader, no provider of eddie's own, no port.
    assert (telemetry.readers, telemetry.provider, runtime.current().server) == ([], None, None)
    eddie_otel.record_split(agent="a", chunks=3, depth=1)
    data = reader.get_metrics_data()
    assert [point.value for point in _points(data, SPLIT.otel_name)] == [1]  # type: ignore[attr-defined]
    eddie_otel.shutdown()
    eddie_otel.configure(meter_provider=provider)
    eddie_otel.record_split(agent="a", chunks=3, depth=1)
    data = reader.get_metrics_data()
    # The same instruments again: the count goes on from 1, once.
    assert [point.value for point in _points(data, SPLIT.otel_name)] == [2]  # type: ignore[attr-defined]
    assert [point.value for point in _points(data, "app.requests")] == [5]  # type: ignore[attr-defined]


def test_views_of_a_borrowed_provider_apply_to_eddies_series_and_not_to_its_endpoint() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[
            View(instrument_name=SPLIT.otel_name, name="eddie.splits"),
            View(instrument_name=TIMEOUTS.otel_name, aggregation=DropAggregation()),
            View(instrument_name=TASK.otel_name, attribute_keys=set()),
            View(instrument_name=CHUNK.otel_name, aggregation=ExponentialBucketHistogramAggregation()),
        ],
    )
    try:
        eddie_otel.configure(meter_provider=provider, serve=False)
        eddie_otel.record_split(agent="a", chunks=3, depth=1)
        eddie_otel.record_timeout(agent="a", stage="s", reason="deadline")
        eddie_otel.record_task(stage="one", duration_seconds=1.0)
        eddie_otel.record_task(stage="two", duration_seconds=2.0)
        eddie_otel.record_chunk(agent="a", duration_seconds=0.5)
        data = reader.get_metrics_data()
        names = _names(data)
        assert "eddie.splits" in names
        assert SPLIT.otel_name not in names
        assert TIMEOUTS.otel_name not in names
        (task,) = _points(data, TASK.otel_name)
        assert (dict(task.attributes), task.count) == ({}, 2)  # type: ignore[attr-defined]
        assert data is not None
        (chunk,) = [
            m
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == CHUNK.otel_name
        ]
        assert isinstance(chunk.data, ExponentialHistogram)
        # eddie's own exposition keeps the exact names of its contract.
        text = runtime.current().telemetry.exposition()[0].decode()
        found = families(text)
        assert {"task_split", "timeout_events", "task_execution_seconds"} <= set(found)
    finally:
        eddie_otel.reset()
        provider.shutdown()


def test_a_readers_preferred_aggregation_and_temporality_apply() -> None:
    reader = InMemoryMetricReader(
        preferred_temporality={ObservableCounter: AggregationTemporality.DELTA, Counter: AggregationTemporality.DELTA},
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()},
    )
    provider = MeterProvider(metric_readers=[reader])
    try:
        eddie_otel.configure(meter_provider=provider, serve=False)
        eddie_otel.record_split(agent="a", chunks=3, depth=1)
        eddie_otel.record_task(stage="s", duration_seconds=1.0)
        first = reader.get_metrics_data()
        eddie_otel.record_split(agent="a", chunks=3, depth=1)
        second = reader.get_metrics_data()
        assert [point.value for point in _points(first, SPLIT.otel_name)] == [1]  # type: ignore[attr-defined]
        assert [point.value for point in _points(second, SPLIT.otel_name)] == [1]  # type: ignore[attr-defined]
        assert first is not None
        kinds = {
            type(m.data)
            for rm in first.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == TASK.otel_name
        }
        assert kinds == {ExponentialHistogram}
    finally:
        eddie_otel.reset()
        provider.shutdown()


@pytest.mark.parametrize(("exemplar_filter", "expected"), [("trace_based", 1), ("always_off", 0)])
def test_the_exemplar_filter_applies_to_eddies_endpoint(
    exemplar_filter: str, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", exemplar_filter)
    tracer_provider = TracerProvider()
    try:
        eddie_otel.configure(serve=False, tracer_provider=tracer_provider)

        @eddie_otel.task(stage="s", agent="a")
        def work() -> None:
            return None

        work()
        text, _ = runtime.current().telemetry.exposition("application/openmetrics-text")
        assert text.decode().count(" # {span_id=") == expected
    finally:
        eddie_otel.reset()
        tracer_provider.shutdown()


def test_an_invalid_exemplar_filter_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes")
    with pytest.raises(eddie_otel.EddieOtelError, match=r"^OTEL_METRICS_EXEMPLAR_FILTER must be one of"):
        eddie_otel.configure(serve=False)
    assert runtime.configured() is None


def test_nothing_another_library_records_or_configures_breaks_eddies_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())],
    )

    def broken(options: CallbackOptions) -> list[Observation]:
        raise RuntimeError("a broken instrument")

    provider.get_meter("other").create_observable_gauge("other.broken", callbacks=[broken])
    provider.get_meter("other").create_histogram("other.latency").record(1.0)
    try:
        eddie_otel.configure(meter_provider=provider, serve=False)
        record_every_metric()
        with caplog.at_level(logging.CRITICAL):
            reader.get_metrics_data()
        text = runtime.current().telemetry.exposition()[0].decode()
        found = families(text)
        assert "task_execution_seconds" in found
        assert not any(name.startswith("other") for name in found)
    finally:
        eddie_otel.reset()
        provider.shutdown()
