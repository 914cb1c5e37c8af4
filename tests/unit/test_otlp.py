"""OTEL_METRICS_EXPORTER=otlp pushes the real OTLP/HTTP protobuf payload to a receiver on loopback."""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

import eddie_otel
from eddie_otel import runtime
from eddie_otel.catalogue import METRICS
from tests.conftest import free_port
from tests.support.helpers import record_every_metric, wait_until


class Receiver:
    """A minimal OTLP/HTTP metrics receiver: decodes each POST /v1/metrics body as protobuf."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, ExportMetricsServiceRequest]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/x-protobuf"
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append((self.path, request))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """Metric name -> attribute dicts of its data points, over every request received."""
        found: dict[str, list[dict[str, Any]]] = {}
        for _, request in list(self.requests):
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        kind = metric.WhichOneof("data")
                        points = getattr(metric, kind).data_points
                        found.setdefault(metric.name, []).extend(
                            {kv.key: kv.value.string_value for kv in point.attributes} for point in points
                        )
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    # Flush eddie-otel's final export while the receiver still listens.
    eddie_otel.shutdown()
    server.close()


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"])
def test_every_metric_reaches_the_receiver_with_its_attributes(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    base = f"http://127.0.0.1:{receiver.port}"
    monkeypatch.setenv(variable, base if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" else base + "/v1/metrics")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "eddie-otlp")
    eddie_otel.configure(serve=False)
    record_every_metric()
    expected = {m.otel_name: m for m in METRICS}
    wait_until(lambda: set(expected) <= set(receiver.metrics()), 20, "not every metric reached the receiver")
    assert {path for path, _ in receiver.requests} == {"/v1/metrics"}
    found = receiver.metrics()
    for name, metric in expected.items():
        assert any(set(point) == set(metric.labels) for point in found[name]), (name, found[name])
    assert {"stage": "codegen"} in found["task.execution"]
    assert {"container": "agent-1", "type": "cpu_up"} in found["docker.elastic_adjustment"]
    resource = receiver.requests[-1][1].resource_metrics[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "eddie-otlp"


def test_prometheus_and_otlp_together(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    eddie_otel.configure(serve=False, exporters="prometheus,otlp")
    record_every_metric()
    wait_until(lambda: "task.split" in receiver.metrics(), 20, "task.split did not reach the receiver")
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
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.2")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    eddie_otel.configure(serve=False, exporters="otlp")
    reader = runtime.current().telemetry.readers[0]
    exporter_logger = logging.getLogger("opentelemetry.exporter.otlp")
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
