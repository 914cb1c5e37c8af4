"""configure(): idempotent, reversible, cooperative with an installed MeterProvider, nothing at import."""

from __future__ import annotations

import logging
import socket
import sys
import urllib.request

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import eddie_otel
from eddie_otel import runtime
from tests.support.helpers import record_every_metric, sample_value


def port_is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_configure_twice_with_the_same_settings_is_the_same_runtime(port: int) -> None:
    first = eddie_otel.configure(port=port)
    assert eddie_otel.configure(port=port) is first
    assert port_is_listening(port)


def test_configure_with_new_settings_replaces_the_runtime(port: int) -> None:
    first = eddie_otel.configure(port=port)
    second = eddie_otel.configure(serve=False)
    assert second is not first
    assert not port_is_listening(port)


def test_shutdown_releases_the_port_and_recording_reconfigures(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    eddie_otel.configure(port=port)
    eddie_otel.shutdown()
    assert not port_is_listening(port)
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))
    eddie_otel.record_merge(chunks_combined=2, duplicates_removed=0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/prometheus", timeout=5) as response:
        assert sample_value(response.read().decode(), "merge_chunks_combined_total") == 2


def test_serve_false_opens_no_port(port: int) -> None:
    eddie_otel.configure(port=port, serve=False)
    record_every_metric()
    assert not port_is_listening(port)
    assert b"task_split_total" in runtime.current().telemetry.exposition()[0]


def test_an_installed_sdk_provider_is_used_not_replaced() -> None:
    other = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[other])
    eddie_otel.configure(serve=False, meter_provider=provider)
    record_every_metric()
    assert runtime.current().telemetry.borrowed is provider
    # The user's own reader sees eddie-otel's metrics too.
    data = other.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"task.split", "task.execution", "agent.active_tasks"} <= names
    # And shutting eddie-otel down detaches its reader without shutting the user's provider down.
    eddie_otel.shutdown()
    provider.get_meter("user").create_counter("still.alive").add(1)
    data = other.get_metrics_data()
    assert data is not None
    assert "still.alive" in {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    provider.shutdown()


def test_otlp_without_the_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if the package were missing.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    with pytest.raises(eddie_otel.ConfigurationError, match=r"pip install 'eddie-otel\[otlp\]'"):
        eddie_otel.configure(serve=False, exporters="prometheus,otlp")


def test_invalid_environment_fails_configure_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDDIE_OTEL_MAX_FALLBACK_DEPTH", "deep")
    with pytest.raises(eddie_otel.ConfigurationError, match="EDDIE_OTEL_MAX_FALLBACK_DEPTH must be an integer"):
        eddie_otel.configure(serve=False)
    assert runtime.configured() is None


def test_recording_without_configure_configures_from_the_environment(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))

    @eddie_otel.task(stage="s")
    def run() -> int:
        return 1

    assert run() == 1
    assert runtime.current().settings.port == port
    assert port_is_listening(port)


def test_implicit_configure_with_a_taken_port_still_records(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))
        eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    assert runtime.current().telemetry.store.series["merge_chunks_combined_total"].total() == 1


def test_configuring_again_on_a_borrowed_provider_keeps_its_instruments(caplog: pytest.LogCaptureFixture) -> None:
    user_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[user_reader])
    eddie_otel.configure(serve=False, meter_provider=provider)
    eddie_otel.record_merge(chunks_combined=2, duplicates_removed=0)
    eddie_otel.shutdown()
    eddie_otel.configure(serve=False, meter_provider=provider)
    eddie_otel.record_merge(chunks_combined=5, duplicates_removed=0)
    # The provider's instruments live as long as it does: the count goes on, never back.
    text = runtime.current().telemetry.exposition()[0].decode()
    assert sample_value(text, "merge_chunks_combined_total") == 7
    data = user_reader.get_metrics_data()
    assert data is not None
    points = [
        point.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "merge.chunks_combined"
        for point in m.data.data_points
    ]
    assert points == [7]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "eddie" in r.name]
    provider.shutdown()
