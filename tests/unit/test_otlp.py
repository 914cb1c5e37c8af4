"""OTEL_METRICS_EXPORTER=otlp pushes the real OTLP/HTTP protobuf payload to a otlp_receiver on loopback."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from typing import Any

import pytest

import eddie_otel
from eddie_otel import runtime
from eddie_otel.catalogue import METRICS
from tests.conftest import free_port
from tests.support.helpers import record_every_metric, wait_until
from tests.support.otlp_receiver import OtlpReceiver


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"])
def test_every_metric_reaches_the_receiver_with_its_attributes(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    base = f"http://127.0.0.1:{otlp_receiver.port}"
    monkeypatch.setenv(variable, base if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" else base + "/v1/metrics")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "eddie-otlp")
    eddie_otel.configure(serve=False)
    record_every_metric()
    expected = {m.otel_name: m for m in METRICS}
    wait_until(lambda: set(expected) <= set(otlp_receiver.metrics()), 20, "not every metric reached the otlp_receiver")
    assert {path for path, _ in otlp_receiver.received} == {"/v1/metrics"}
    found = otlp_receiver.metrics()
    for name, metric in expected.items():
        assert any(set(point) == set(metric.labels) for point in found[name]), (name, found[name])
    assert {"stage": "codegen"} in found["task.execution"]
    assert {"container": "agent-1", "type": "cpu_up"} in found["docker.elastic_adjustment"]
    resource = otlp_receiver.received[-1][1].resource_metrics[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "eddie-otlp"


def test_prometheus_and_otlp_together(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{otlp_receiver.port}")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    eddie_otel.configure(serve=False, exporters="prometheus,otlp")
    record_every_metric()
    wait_until(lambda: "task.split" in otlp_receiver.metrics(), 20, "task.split did not reach the otlp_receiver")
    assert b"task_split_total" in runtime.current().telemetry.exposition()[0]


class CountingHandler(logging.Handler):
    """Counts records without keeping them, so that logging does not hold memory."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def test_an_unreachable_endpoint_is_logged_never_raised_and_memory_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    # Whole seconds: what every supported exporter release reads (older ones take no fraction).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    eddie_otel.configure(serve=False, exporters="otlp")
    reader = runtime.current().telemetry.readers[0]
    # The exporter logs a failed export itself; older exporters raise it and the SDK reader logs it.
    exporter_logger = logging.getLogger("opentelemetry")
    counter = CountingHandler()
    exporter_logger.addHandler(counter)
    monkeypatch.setattr(exporter_logger, "propagate", False)

    @eddie_otel.task(stage="s", agent="a")
    def work() -> int:
        return 1

    def failed_exports(count: int) -> None:
        for _ in range(count):
            for _ in range(200):
                work()
            reader.force_flush(timeout_millis=2_000)
        gc.collect()

    try:
        failed_exports(3)
        tracemalloc.start()
        first = tracemalloc.take_snapshot()
        failed_exports(10)
        second = tracemalloc.take_snapshot()
        failed_exports(10)
        third = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        exporter_logger.removeHandler(counter)
    early = sum(stat.size_diff for stat in second.compare_to(first, "filename"))
    late = sum(stat.size_diff for stat in third.compare_to(second, "filename"))
    # Cumulative temporality keeps one point per series whatever the failed exports. A
    # backlog of measurements or of unsent batches would grow by hundreds of bytes per
    # call, several megabytes over these 2,000 calls; what other tests left behind for
    # the garbage collector stays well under one.
    assert late < 1024 * 1024, (early, late)
    assert counter.count >= 20
    assert work() == 1


def _metrics(receiver: OtlpReceiver, name: str) -> list[Any]:
    return [
        metric
        for _, request in receiver.received
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
    ]


def test_the_default_histogram_aggregation_variable_applies_to_eddies_histograms(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{otlp_receiver.port}/v1/metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "base2_exponential_bucket_histogram")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    eddie_otel.configure(serve=False, exporters="otlp")
    for seconds in (0.2, 1.0, 30.0):
        eddie_otel.record_task(stage="s", duration_seconds=seconds)
    assert runtime.current().telemetry.provider is not None
    runtime.current().telemetry.provider.force_flush()
    (metric,) = _metrics(otlp_receiver, "task.execution")
    assert metric.WhichOneof("data") == "exponential_histogram"
    (point,) = metric.exponential_histogram.data_points
    assert (point.count, point.sum) == (3, 31.2)


def test_otlp_over_grpc_when_the_protocol_variable_says_so(
    otlp_grpc_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{otlp_grpc_receiver.port}")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    eddie_otel.configure(serve=False, exporters="otlp")
    eddie_otel.record_split(agent="a", chunks=3, depth=1)
    assert runtime.current().telemetry.provider is not None
    runtime.current().telemetry.provider.force_flush()
    assert {path for path, _ in otlp_grpc_receiver.received} == {"/v1/metrics"}
    assert otlp_grpc_receiver.metrics()["task.split"] == [{"agent": "a"}]
    (metric,) = _metrics(otlp_grpc_receiver, "task.split")
    (point,) = metric.sum.data_points
    assert point.as_double + point.as_int == 1


def test_an_unknown_otlp_protocol_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")
    with pytest.raises(eddie_otel.EddieOtelError, match=r"^OTEL_EXPORTER_OTLP_METRICS_PROTOCOL must be one of"):
        eddie_otel.configure(serve=False, exporters="otlp")
