"""Exact: the same durations, on and around every bucket boundary, come out identically in the
Prometheus exposition and in a real OTLP/HTTP export (cumulative and delta), and counts stay
exact under threads."""

from __future__ import annotations

import math
import threading

import pytest
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

import eddie_otel
from eddie_otel import runtime
from eddie_otel.catalogue import DURATION_BUCKETS, by_prometheus_name
from tests.support.boundaries import boundary_values, per_bucket, prometheus_histogram, sdk_histogram_points
from tests.support.helpers import sample_value
from tests.support.otlp_receiver import OtlpReceiver

TASK = by_prometheus_name("task_execution_seconds")
CHUNK = by_prometheus_name("chunk_execution_seconds")
# OTLP's AggregationTemporality enum.
OTLP_DELTA, OTLP_CUMULATIVE = 1, 2


def configure_with_otlp(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> PeriodicExportingMetricReader:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{otlp_receiver.port}/v1/metrics")
    # Exports happen when the test flushes, never on their own.
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    eddie_otel.configure(serve=False, exporters="prometheus,otlp")
    (reader,) = (r for r in runtime.current().telemetry.readers if isinstance(r, PeriodicExportingMetricReader))
    return reader


def record(values: list[float], stage: str = "exact", agent: str = "exact-agent") -> None:
    for value in values:
        eddie_otel.record_task(stage=stage, duration_seconds=value)
        eddie_otel.record_chunk(agent=agent, duration_seconds=value)


def export(otlp_receiver: OtlpReceiver, reader: PeriodicExportingMetricReader) -> object:
    before = len(otlp_receiver.received)
    assert reader.force_flush(timeout_millis=10_000)
    assert len(otlp_receiver.received) == before + 1
    return otlp_receiver.received[-1][1]


def assert_otlp_point(request: object, values: list[float], temporality: int) -> None:
    for metric, labels in ((TASK, {"stage": "exact"}), (CHUNK, {"agent": "exact-agent"})):
        (point,) = sdk_histogram_points(request, metric.otel_name, **labels)
        assert list(point.explicit_bounds) == list(DURATION_BUCKETS)
        assert list(point.bucket_counts) == per_bucket(values), metric.otel_name
        assert point.count == len(values)
        assert point.sum == pytest.approx(math.fsum(values), rel=1e-12)
    for resource_metrics in request.resource_metrics:  # type: ignore[attr-defined]
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == TASK.otel_name:
                    assert metric.histogram.aggregation_temporality == temporality


def test_every_boundary_lands_where_prometheus_puts_it(configured: object) -> None:
    values = boundary_values()
    record(values)
    text = runtime.current().telemetry.exposition()[0].decode()
    for metric, labels in ((TASK, {"stage": "exact"}), (CHUNK, {"agent": "exact-agent"})):
        bounds, counts, count, total = prometheus_histogram(text, metric.prometheus_name, **labels)
        assert bounds == list(DURATION_BUCKETS)
        assert counts == per_bucket(values), metric.prometheus_name
        # Each bucket holds the bound, the float just below it and the float just above the
        # previous bound (the first: 0; +Inf: just above the last bound and two values past it).
        assert counts == [3] * (len(DURATION_BUCKETS) + 1)
        assert count == len(values)
        assert total == pytest.approx(math.fsum(values), rel=1e-12)
    assert sample_value(text, "task_success_total", stage="exact") == len(values)


def test_otlp_cumulative_export_carries_the_same_buckets_as_the_exposition(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = configure_with_otlp(otlp_receiver, monkeypatch)
    first = boundary_values()
    record(first)
    request = export(otlp_receiver, reader)
    assert_otlp_point(request, first, OTLP_CUMULATIVE)
    text = runtime.current().telemetry.exposition()[0].decode()
    (point,) = sdk_histogram_points(request, TASK.otel_name, stage="exact")
    _, counts, count, total = prometheus_histogram(text, TASK.prometheus_name, stage="exact")
    assert (list(point.bucket_counts), point.count, point.sum) == (counts, count, total)

    second = [0.01, 60.0, math.nextafter(60.0, math.inf), 3600.0]
    record(second)
    assert_otlp_point(export(otlp_receiver, reader), first + second, OTLP_CUMULATIVE)


def test_otlp_delta_export_carries_only_what_was_recorded_since_the_last_one(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    reader = configure_with_otlp(otlp_receiver, monkeypatch)
    first = boundary_values()
    record(first)
    assert_otlp_point(export(otlp_receiver, reader), first, OTLP_DELTA)

    second = [0.0, 0.01, 60.0, math.nextafter(60.0, math.inf), 3600.0, 3600.0]
    record(second)
    request = export(otlp_receiver, reader)
    assert_otlp_point(request, second, OTLP_DELTA)
    # The Prometheus exposition stays cumulative.
    text = runtime.current().telemetry.exposition()[0].decode()
    _, counts, count, _ = prometheus_histogram(text, TASK.prometheus_name, stage="exact")
    assert (counts, count) == (per_bucket(first + second), len(first) + len(second))

    # Nothing recorded since: no point for the series (and nothing to send at all).
    before = len(otlp_receiver.received)
    assert reader.force_flush(timeout_millis=10_000)
    for _, request in otlp_receiver.received[before:]:
        assert sdk_histogram_points(request, TASK.otel_name, stage="exact") == []


def test_counts_stay_exact_under_eight_threads(configured: object) -> None:
    threads, calls = 8, 10_000

    @eddie_otel.task(stage="threads", agent="thread-agent")
    def work() -> None:
        pass

    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        for _ in range(calls):
            work()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    text = runtime.current().telemetry.exposition()[0].decode()
    _, counts, count, _ = prometheus_histogram(text, TASK.prometheus_name, stage="threads")
    assert count == sum(counts) == threads * calls
    assert sample_value(text, "task_success_total", stage="threads") == threads * calls
    assert sample_value(text, "agent_tasks_executed_total", agent="thread-agent") == threads * calls
    assert sample_value(text, "agent_active_tasks", agent="thread-agent") == 0
