"""The HTTP server metrics of the service itself, through the OpenTelemetry FastAPI instrumentation."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider

from eddie_otel import environment as env
from eddie_otel.endpoint import METRICS_PATH

__all__ = ["DEFAULT_EXCLUDED_URLS", "instrument"]

# Left out of the HTTP server metrics unless the variables say otherwise (see instrument).
DEFAULT_EXCLUDED_URLS = "/events"


def instrument(app: FastAPI, provider: MeterProvider) -> None:
    """Export the app's HTTP server metrics through `provider`, the scrape endpoint excluded.

    The stable HTTP semantic conventions are used unless OTEL_SEMCONV_STABILITY_OPT_IN
    says otherwise: their labels are all bounded (method, route, status, scheme,
    protocol), where the older ones label every series with the client's Host header,
    so that any client could create series at will. The conventions are chosen once per
    process, when the first instrumentation starts.

    The event webhooks are left out too unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (or
    OTEL_PYTHON_EXCLUDED_URLS) gives another list: the middleware costs about three
    times the service's own work per event (`make bench`), and eddie_otel_events_total
    already counts every event by type and outcome.
    """
    chosen_urls = os.environ.get(env.OTEL_PYTHON_FASTAPI_EXCLUDED_URLS) or os.environ.get(env.OTEL_PYTHON_EXCLUDED_URLS)
    excluded = [METRICS_PATH.lstrip("/"), chosen_urls or DEFAULT_EXCLUDED_URLS]
    chosen = env.OTEL_SEMCONV_STABILITY_OPT_IN in os.environ
    if not chosen:
        os.environ[env.OTEL_SEMCONV_STABILITY_OPT_IN] = "http"
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            meter_provider=provider,
            excluded_urls=",".join(excluded),
            # One server span per request is enough; spans around each ASGI receive and send cost time for no insight.
            exclude_spans=["receive", "send"],
        )
    finally:
        if not chosen:
            os.environ.pop(env.OTEL_SEMCONV_STABILITY_OPT_IN, None)
