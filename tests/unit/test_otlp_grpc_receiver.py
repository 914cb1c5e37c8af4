"""The OTLP/gRPC receiver of tests/support: the SDK's own gRPC exporters reach it, and it keeps what they sent."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.support.otlp_grpc_receiver import OtlpGrpcReceiver

# Long enough that only force_flush exports.
NEVER_MS = 3_600_000


def test_a_counter_exported_over_grpc_arrives_with_its_exact_value(otlp_grpc_receiver: OtlpGrpcReceiver) -> None:
    exporter = OTLPMetricExporter(endpoint=otlp_grpc_receiver.address, insecure=True, timeout=10)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=NEVER_MS)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "grpc-test"}))
    try:
        counter = provider.get_meter("grpc-receiver-test").create_counter("grpc.test.requests", unit="{request}")
        counter.add(40, {"route": "/a"})
        counter.add(2, {"route": "/a"})
        counter.add(5, {"route": "/b"})
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown()

    # force_flush exported once (shutdown exports once more): cumulative, so each carries the same totals.
    requests = otlp_grpc_receiver.requests["/v1/metrics"]
    assert requests
    for request in requests:
        [resource_metrics] = request.resource_metrics
        resource = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
        assert resource["service.name"] == "grpc-test"
        [metric] = [m for scope in resource_metrics.scope_metrics for m in scope.metrics]
        assert (metric.name, metric.unit, metric.WhichOneof("data")) == ("grpc.test.requests", "{request}", "sum")
        assert metric.sum.is_monotonic
        values = {point.attributes[0].value.string_value: point.as_int for point in metric.sum.data_points}
        assert values == {"/a": 42, "/b": 5}
    assert otlp_grpc_receiver.received == [("/v1/metrics", request) for request in requests]
    # The HTTP receiver's reading methods work on it too.
    assert otlp_grpc_receiver.metrics() == {"grpc.test.requests": [{"route": "/a"}, {"route": "/b"}] * len(requests)}


def test_spans_exported_over_grpc_arrive(otlp_grpc_receiver: OtlpGrpcReceiver) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-test"}))
    # An http:// endpoint makes the exporter insecure by itself, as OTEL_EXPORTER_OTLP_ENDPOINT does.
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_grpc_receiver.endpoint, timeout=10)))
    try:
        with provider.get_tracer("grpc-receiver-test").start_as_current_span("invoke_agent python-agent"):
            pass
    finally:
        provider.shutdown()

    [(resource, span)] = otlp_grpc_receiver.spans()
    assert resource["service.name"] == "grpc-test"
    assert span.name == "invoke_agent python-agent"
    assert otlp_grpc_receiver.requests["/v1/metrics"] == []
