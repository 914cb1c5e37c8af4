"""The read routes under /metrics: the Prometheus exposition, the JSON summary and the health check."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from eddie_otel.endpoint import HEALTH_PATH, METRICS_PATH, SUMMARY_PATH, health_body
from eddie_otel.environment import EDDIE_OTEL_PROMETHEUS_URL
from eddie_otel.errors import EddieOtelError
from eddie_otel.exposition import render
from eddie_otel.ops.credentials import url_redactor
from eddie_otel.runtime import Runtime
from eddie_otel.service.events import FieldError
from eddie_otel.service.openapi import PROBLEM_SCHEMA_NAME, SUMMARY_SCHEMA_NAME, schema_ref
from eddie_otel.service.schema import Health, problem
from eddie_otel.service.settings import ServiceSettings
from eddie_otel.summary import summary

__all__ = ["add_metrics_routes"]


def add_metrics_routes(app: FastAPI, runtime: Runtime, service: ServiceSettings | None = None) -> None:
    """Add GET /metrics/prometheus, /metrics/summary and /metrics/health, all reading `runtime`.

    `/metrics/summary?scope=fleet` asks the Prometheus of `service.prometheus_url` for the fleet's summary.
    """
    prometheus_url = service.prometheus_url if service is not None else None
    redact = url_redactor([prometheus_url])
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
        description=(
            "This process's summary, or with `scope=fleet` the whole fleet's, computed by the Prometheus of "
            f"{EDDIE_OTEL_PROMETHEUS_URL} over every instance it scrapes (plus `instances` and `source`)."
        ),
        responses={
            200: {"content": {"application/json": {"schema": schema_ref(SUMMARY_SCHEMA_NAME)}}},
            400: {
                "description": f"scope=fleet, but {EDDIE_OTEL_PROMETHEUS_URL} is not set",
                "content": {"application/json": {"schema": schema_ref(PROBLEM_SCHEMA_NAME)}},
            },
            502: {
                "description": "scope=fleet, and Prometheus cannot be reached or refused a query",
                "content": {"application/json": {"schema": schema_ref(PROBLEM_SCHEMA_NAME)}},
            },
        },
        tags=["metrics"],
    )
    def get_summary(
        scope: Literal["local", "fleet"] = Query(
            "local", description="`local` (this process) or `fleet` (every instance Prometheus scrapes)"
        ),
    ) -> Response:
        if scope == "local":
            return JSONResponse(summary(runtime))
        if prometheus_url is None:
            message = f"scope=fleet needs {EDDIE_OTEL_PROMETHEUS_URL}, the Prometheus that scrapes the fleet"
            return problem(400, [FieldError(field="scope", message=message)])
        # Imported here: a service that never answers for the fleet does not load the PromQL client.
        from eddie_otel.ops.fleet import fleet_summary

        try:
            return JSONResponse(dict(fleet_summary(prometheus_url)))
        except EddieOtelError as exc:
            message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return problem(502, [FieldError(field="scope", message=message)])

    @app.get(
        HEALTH_PATH, response_model=Health, response_model_exclude_none=True, summary="Health check", tags=["metrics"]
    )
    async def health() -> Health:
        return Health(**health_body(runtime.settings.service_name, started))
