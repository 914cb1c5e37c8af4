"""The read routes under /metrics: the Prometheus exposition, the JSON summary and the health check."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from eddie_otel.endpoint import HEALTH_PATH, METRICS_PATH, SUMMARY_PATH, health_body
from eddie_otel.exposition import render
from eddie_otel.runtime import Runtime
from eddie_otel.service.openapi import SUMMARY_SCHEMA_NAME, schema_ref
from eddie_otel.service.schema import Health
from eddie_otel.summary import summary

__all__ = ["add_metrics_routes"]


def add_metrics_routes(app: FastAPI, runtime: Runtime) -> None:
    """Add GET /metrics/prometheus, /metrics/summary and /metrics/health, all reading `runtime`."""
    started = time.monotonic()
    registry = runtime.telemetry.registry

    @app.get(
        METRICS_PATH,
        response_class=Response,
        summary="Prometheus exposition",
        description=(
            "The eddie metrics and the service's own HTTP metrics in the Prometheus text format, or "
            "OpenMetrics when the Accept header asks for application/openmetrics-text; gzip when "
            "Accept-Encoding allows it."
        ),
        responses={
            200: {
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                }
            }
        },
        tags=["metrics"],
    )
    def prometheus(request: Request) -> Response:
        body, headers = render(registry, request.headers.get("accept"), request.headers.get("accept-encoding"))
        return Response(body, headers=headers)

    @app.get(
        SUMMARY_PATH,
        response_class=JSONResponse,
        summary="Totals, agent load, latency percentiles, windows and success indicators",
        responses={200: {"content": {"application/json": {"schema": schema_ref(SUMMARY_SCHEMA_NAME)}}}},
        tags=["metrics"],
    )
    def get_summary() -> JSONResponse:
        return JSONResponse(summary(runtime))

    @app.get(HEALTH_PATH, response_model=Health, summary="Health check", tags=["metrics"])
    async def health() -> Health:
        return Health(**health_body(runtime.settings.service_name, started))
