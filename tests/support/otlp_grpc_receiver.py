"""A loopback OTLP/gRPC receiver: the collector's MetricsService and TraceService, keeping each Export request.

It reads like `OtlpReceiver` (tests/support/otlp_receiver.py), so a test can take either:
`requests["/v1/metrics"]` and `requests["/v1/traces"]` hold the requests received by
MetricsService/Export and TraceService/Export, `received` lists them in order, and
`metrics()`, `spans()` and `histogram_exemplars()` are the HTTP receiver's own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.support.otlp_receiver import OtlpReceiver

METRICS = "/v1/metrics"
TRACES = "/v1/traces"


class OtlpGrpcReceiver:
    """Listens on 127.0.0.1 without TLS; `requests[path]` holds the requests received for that signal.

    `endpoint` is the URL for OTEL_EXPORTER_OTLP_ENDPOINT (its http scheme makes the
    exporter insecure); `address` is host:port, for an exporter built with insecure=True.
    """

    metrics = OtlpReceiver.metrics
    spans = OtlpReceiver.spans
    histogram_exemplars = OtlpReceiver.histogram_exemplars

    def __init__(self) -> None:
        self.requests: dict[str, list[Any]] = {METRICS: [], TRACES: []}
        self.received: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                receiver._keep(METRICS, request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                receiver._keep(TRACES, request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self.endpoint = f"http://{self.address}"
        self.server.start()

    def _keep(self, path: str, request: Any) -> None:
        with self._lock:
            self.requests[path].append(request)
            self.received.append((path, request))

    def close(self) -> None:
        """Stop listening (requests in flight are cancelled)."""
        self.server.stop(grace=None).wait(5)
