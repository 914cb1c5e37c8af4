"""A loopback OTLP/HTTP receiver: decodes each POST /v1/metrics and /v1/traces body as the real protobuf."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_REQUESTS: dict[str, type[Any]] = {"/v1/metrics": ExportMetricsServiceRequest, "/v1/traces": ExportTraceServiceRequest}


class OtlpReceiver:
    """Listens on 127.0.0.1; `requests[path]` holds the decoded requests received there.

    `received` lists every POST in order as (path, decoded request), the request None
    when the path or the content type was not OTLP's (answered 404).
    """

    def __init__(self) -> None:
        self.requests: dict[str, list[Any]] = {path: [] for path in _REQUESTS}
        self.received: list[tuple[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                kind = _REQUESTS.get(self.path)
                if kind is None or self.headers["Content-Type"] != "application/x-protobuf":
                    receiver.received.append((self.path, None))
                    self.send_response(404)
                    self.end_headers()
                    return
                request = kind()
                request.ParseFromString(body)
                receiver.requests[self.path].append(request)
                receiver.received.append((self.path, request))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """Metric name -> attribute dicts of its data points, over every metrics request received."""
        found: dict[str, list[dict[str, Any]]] = {}
        for request in list(self.requests["/v1/metrics"]):
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        kind = metric.WhichOneof("data")
                        points = getattr(metric, kind).data_points
                        found.setdefault(metric.name, []).extend(
                            {kv.key: kv.value.string_value for kv in point.attributes} for point in points
                        )
        return found

    def spans(self) -> list[tuple[dict[str, str], Any]]:
        """Every span received, with the string attributes of its resource."""
        found = []
        for request in list(self.requests["/v1/traces"]):
            for resource_spans in request.resource_spans:
                resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope_spans.spans)
        return found

    def histogram_exemplars(self, name: str) -> list[Any]:
        """Every exemplar of every data point of the histogram `name` received."""
        found = []
        for request in list(self.requests["/v1/metrics"]):
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if metric.name == name and metric.WhichOneof("data") == "histogram":
                            for point in metric.histogram.data_points:
                                found.extend(point.exemplars)
        return found

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()
