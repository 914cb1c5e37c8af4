"""EddieOtelInstrumentor in process: configures eddie-otel on the given provider, idempotently, and turns it off."""

from __future__ import annotations

import importlib.metadata
import logging
import socket
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import eddie_otel
from eddie_otel import runtime
from eddie_otel.instrumentor import EddieOtelInstrumentor
from tests.conftest import free_port

SCOPE = "eddie_otel"


@pytest.fixture
def instrumentor(monkeypatch: pytest.MonkeyPatch) -> Iterator[EddieOtelInstrumentor]:
    """The (singleton) instrumentor, uninstrumented afterwards and eddie-otel's recording left enabled."""
    # BaseInstrumentor.instrument() fixes the HTTP semantic conventions for the whole process the
    # first time it runs: the stable ones, which the service's own HTTP metrics use in the tests
    # that share this process.
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    instrumentor = EddieOtelInstrumentor()
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    # disable() outlives a reset(): the next test must find recording on.
    runtime.enable()


class AppProvider(NamedTuple):
    """An SDK MeterProvider of the app's and its one in-memory reader."""

    provider: MeterProvider
    reader: InMemoryMetricReader


@pytest.fixture
def app() -> Iterator[AppProvider]:
    """The app's provider, shut down afterwards."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield AppProvider(provider, reader)
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[tuple[str, frozenset[tuple[str, Any]]], list[Any]]:
    """(eddie metric name, attributes) -> the values (a histogram's count) of one collection of `reader`."""
    found: dict[tuple[str, frozenset[tuple[str, Any]]], list[Any]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name != SCOPE:
                continue
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = point.count if isinstance(point, HistogramDataPoint) else point.value
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    found.setdefault(key, []).append(value)
    return found


def series(name: str, **attributes: str) -> tuple[str, frozenset[tuple[str, Any]]]:
    """The key of one series in `points()`."""
    return name, frozenset(attributes.items())


@eddie_otel.task(stage="codegen", agent="a1")
def work(value: int) -> int:
    """A decorated task that fails on negative values."""
    if value < 0:
        raise ValueError(value)
    return value * 2


def run_work() -> None:
    """Two successful calls and one failing call."""
    assert work(1) == 2
    assert work(2) == 4
    with pytest.raises(ValueError, match="-1"):
        work(-1)


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_entry_point_is_found_by_opentelemetry_instrument() -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="opentelemetry_instrumentor")}
    assert "eddie_otel" in found, "reinstall the package (pip install -e .) to register the entry point"
    assert found["eddie_otel"].value == "eddie_otel.instrumentor:EddieOtelInstrumentor"
    assert found["eddie_otel"].load() is EddieOtelInstrumentor


def test_it_depends_on_no_library(instrumentor: EddieOtelInstrumentor) -> None:
    assert list(instrumentor.instrumentation_dependencies()) == []


def test_decorated_calls_record_onto_the_given_provider_once(
    instrumentor: EddieOtelInstrumentor, app: AppProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # eddie-otel's own port setting: a borrowed provider must not make it open it.
    port = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))
    instrumentor.instrument(meter_provider=app.provider)
    assert instrumentor.is_instrumented_by_opentelemetry
    run_work()
    assert eddie_otel.record_split(agent="a1", chunks=3, depth=1) is True
    found = points(app.reader)
    assert found[series("task.split", agent="a1")] == [1]
    assert found[series("task.split.chunks", agent="a1")] == [3]
    assert found[series("task.execution", stage="codegen")] == [3]
    assert found[series("task.success", stage="codegen")] == [2]
    assert found[series("task.failure", stage="codegen", reason="ValueError")] == [1]
    assert found[series("agent.tasks_executed", agent="a1")] == [3]
    assert not listening(port), "configuring on a borrowed provider opened eddie-otel's port"


def test_instrument_twice_is_harmless(
    instrumentor: EddieOtelInstrumentor, app: AppProvider, caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor.instrument(meter_provider=app.provider)
    other = InMemoryMetricReader()
    other_provider = MeterProvider(metric_readers=[other])
    try:
        # The second call is refused by BaseInstrumentor: eddie stays on the first provider, configured once.
        instrumentor.instrument(meter_provider=other_provider)
        assert "already instrumented" in caplog.text
        assert EddieOtelInstrumentor() is instrumentor
        eddie_otel.record_split(agent="a1", chunks=2, depth=1)
        assert points(app.reader)[series("task.split", agent="a1")] == [1]
        assert series("task.split", agent="a1") not in points(other)
    finally:
        other_provider.shutdown()


def test_uninstrument_stops_recording_and_autoconfiguration(
    instrumentor: EddieOtelInstrumentor, app: AppProvider
) -> None:
    instrumentor.instrument(meter_provider=app.provider)
    run_work()
    eddie_otel.record_split(agent="a1", chunks=3, depth=1)
    assert points(app.reader)[series("task.split", agent="a1")] == [1]
    instrumentor.uninstrument()
    assert not instrumentor.is_instrumented_by_opentelemetry
    # The decorated function still runs, unchanged, but nothing is recorded and nothing configures.
    run_work()
    eddie_otel.record_split(agent="a1", chunks=3, depth=1)
    assert runtime.configured() is None
    after = points(app.reader)
    # After shutdown the series may be gone from the reader or keep their last value; never more.
    assert after.get(series("task.split", agent="a1"), [1]) == [1]
    assert after.get(series("task.execution", stage="codegen"), [3]) == [3]
    assert after.get(series("task.failure", stage="codegen", reason="ValueError"), [1]) == [1]


def test_uninstrument_twice_is_harmless_and_instrument_turns_it_back_on(
    instrumentor: EddieOtelInstrumentor, app: AppProvider, caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor.uninstrument()  # never instrumented: only a warning
    instrumentor.instrument(meter_provider=app.provider)
    instrumentor.uninstrument()
    instrumentor.uninstrument()
    assert "already uninstrumented" in caplog.text
    assert runtime.configured() is None
    again = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[again])
    try:
        instrumentor.instrument(meter_provider=provider)
        eddie_otel.record_split(agent="a1", chunks=3, depth=1)
        assert points(again)[series("task.split", agent="a1")] == [1]
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def test_a_configuration_error_is_logged_as_one_line_not_raised(
    instrumentor: EddieOtelInstrumentor,
    app: AppProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("EDDIE_OTEL_MAX_FALLBACK_DEPTH", "deep")
    with caplog.at_level(logging.ERROR, logger="eddie_otel"):
        instrumentor.instrument(meter_provider=app.provider)
    errors = [record for record in caplog.records if record.name == "eddie_otel" and record.levelno >= logging.ERROR]
    assert len(errors) == 1, caplog.text
    message = errors[0].getMessage()
    assert message.startswith("eddie-otel: ")
    assert "EDDIE_OTEL_MAX_FALLBACK_DEPTH" in message
    assert "\n" not in message
    assert errors[0].exc_info is None
    assert runtime.configured() is None


def test_disabled_instrumentation_variable_keeps_autoconfiguration_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "flask, eddie_otel")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")  # no port, should it configure after all
    run_work()
    eddie_otel.record_split(agent="a1", chunks=3, depth=1)
    assert runtime.configured() is None


def test_an_unexpected_error_is_logged_with_its_traceback_not_raised(
    instrumentor: EddieOtelInstrumentor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(runtime, "configure", broken)
    instrumentor.instrument()
    assert instrumentor.is_instrumented_by_opentelemetry
    errors = [record for record in caplog.records if record.name == "eddie_otel" and record.levelno >= logging.ERROR]
    assert len(errors) == 1, caplog.text
    assert errors[0].getMessage() == "eddie-otel: could not configure"
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
