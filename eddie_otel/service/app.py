"""The FastAPI app of the metrics service: metrics, summary, health and event webhooks.

Answers to bad input, in the order they are checked on a POST:

- 401 when EDDIE_OTEL_WEBHOOK_TOKEN is set and `Authorization: Bearer <token>` is missing or wrong;
- 404 for an event type that does not exist, listing the known ones;
- 415 when Content-Type is not application/json (the body is not read);
- 413 when the body is larger than EDDIE_OTEL_MAX_BODY_BYTES (by Content-Length, or counted as it arrives);
- 422 when the body is not valid JSON or not valid events.

Every error is `{"detail": "<field>: <what is wrong>", "errors": [{"field", "message"}]}`, and an
error records nothing: a batch is validated whole before its first event is recorded.
"""

from __future__ import annotations

import gzip
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from typing import Any

import pydantic_core
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from opentelemetry.sdk.metrics import MeterProvider
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import ClientDisconnect

from eddie_otel import runtime as _rt
from eddie_otel._version import __version__
from eddie_otel.config import Settings
from eddie_otel.service.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    BaseEvent,
    EventBatch,
    FieldError,
    InvalidEvents,
    parse_batch,
    parse_event,
    record_event,
)
from eddie_otel.summary import summary
from eddie_otel.telemetry import METRICS_PATH

__all__ = ["HEALTH_PATH", "SUMMARY_PATH", "create_app"]

SUMMARY_PATH = "/metrics/summary"
HEALTH_PATH = "/metrics/health"
# The label value of eddie_otel_events_total for what names no known type: keeps the label bounded.
UNKNOWN_TYPE = "unknown"
# The label value for a rejected batch whose events could not be read.
BATCH_TYPE = "batch"
# Variables of the OpenTelemetry instrumentations, honoured as they document them.
OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
# Left out of the HTTP server metrics unless the variables above say otherwise (see _instrument).
DEFAULT_EXCLUDED_URLS = "/events"
OTEL_PYTHON_FASTAPI_EXCLUDED_URLS = "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"
OTEL_PYTHON_EXCLUDED_URLS = "OTEL_PYTHON_EXCLUDED_URLS"


class Accepted(BaseModel):
    """How many events were recorded."""

    accepted: int


class Problem(BaseModel):
    """Why a request was refused: a one-line `detail`, and each bad field."""

    detail: str
    errors: list[FieldError]


class Health(BaseModel):
    """The service is up."""

    status: str
    version: str
    service: str
    uptime_seconds: float


class AgentLoad(BaseModel):
    """Tasks and chunks running now and finished so far on one agent."""

    active: float
    executed: float


class Latency(BaseModel):
    """Nearest-rank percentiles of a stage's recent task durations, in seconds."""

    samples: int
    p50: float
    p95: float
    p99: float


class Window(BaseModel):
    """Counter increases over a window, and the same per second."""

    seconds: int
    counts: dict[str, float]
    rates: dict[str, float]


class Target(BaseModel):
    """An indicator's target: `value op target.value` must hold."""

    op: str
    value: float


class Indicator(BaseModel):
    """A success indicator; value and ok are null while there is no data."""

    name: str
    value: float | None
    target: Target
    ok: bool | None


class Summary(BaseModel):
    """The summary of GET /metrics/summary, the same dict as eddie_otel.summary()."""

    totals: dict[str, float]
    agents: dict[str, AgentLoad]
    latency: dict[str, Latency]
    windows: dict[str, Window]
    indicators: list[Indicator]


class _Refused(Exception):
    def __init__(
        self,
        status: int,
        errors: Sequence[FieldError],
        rejected: dict[str, int],
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.errors = list(errors)
        self.rejected = rejected
        self.headers = headers or {}


def create_app(settings: Settings | _rt.Runtime | None = None) -> FastAPI:
    """The metrics service app for `settings` (default: the environment), or for an already configured runtime.

    Configures eddie-otel with `serve=False` (the app serves /metrics/prometheus itself)
    unless given a Runtime; starts no server.
    """
    runtime = _runtime_for(settings)
    app = FastAPI(
        title="eddie-otel metrics service",
        version=__version__,
        description=(
            "Prometheus metrics, a JSON summary with success indicators, a health check and event "
            "webhooks for the Eddie distributed-fallback agent system."
        ),
        # Paths are exact: a trailing slash is a 404, never a redirect a scraper might not follow.
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    # Event routes first: routing (and the instrumentation's route lookup) tries routes in order,
    # and webhook posts are the bulk of the traffic.
    _add_event_routes(app, runtime)
    _add_read_routes(app, runtime)
    if runtime.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(runtime.settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if runtime.telemetry.provider is not None:
        _instrument(app, runtime.telemetry.provider)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


def _runtime_for(settings: Settings | _rt.Runtime | None) -> _rt.Runtime:
    if isinstance(settings, _rt.Runtime):
        return settings
    if settings is None:
        return _rt.configure(serve=False)
    given = {field.name: getattr(settings, field.name) for field in fields(settings)}
    given["serve"] = False
    # The Settings object is complete: the environment must not fill in what it left as None.
    return _rt.configure(environ={}, **given)


def _instrument(app: FastAPI, provider: MeterProvider) -> None:
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
    chosen_urls = os.environ.get(OTEL_PYTHON_FASTAPI_EXCLUDED_URLS) or os.environ.get(OTEL_PYTHON_EXCLUDED_URLS)
    excluded = [METRICS_PATH.lstrip("/"), chosen_urls or DEFAULT_EXCLUDED_URLS]
    chosen = OTEL_SEMCONV_STABILITY_OPT_IN in os.environ
    if not chosen:
        os.environ[OTEL_SEMCONV_STABILITY_OPT_IN] = "http"
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
            os.environ.pop(OTEL_SEMCONV_STABILITY_OPT_IN, None)


def _add_read_routes(app: FastAPI, runtime: _rt.Runtime) -> None:
    started = time.monotonic()
    telemetry = runtime.telemetry

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
        body, content_type = telemetry.exposition(request.headers.get("accept"))
        headers = {"Vary": "Accept, Accept-Encoding"}
        if _accepts_gzip(request.headers.get("accept-encoding", "")):
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)

    @app.get(
        SUMMARY_PATH,
        response_class=JSONResponse,
        summary="Totals, agent load, latency percentiles, windows and success indicators",
        responses={200: {"model": Summary}},
        tags=["metrics"],
    )
    def get_summary() -> JSONResponse:
        return JSONResponse(summary(runtime))

    @app.get(HEALTH_PATH, response_model=Health, summary="Health check", tags=["metrics"])
    async def health() -> Health:
        return Health(
            status="ok",
            version=__version__,
            service=runtime.settings.service_name,
            uptime_seconds=round(time.monotonic() - started, 3),
        )


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().lower()
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong bearer token (when EDDIE_OTEL_WEBHOOK_TOKEN is set)"},
    413: {"model": Problem, "description": "Body larger than EDDIE_OTEL_MAX_BODY_BYTES"},
    415: {"model": Problem, "description": "Content-Type is not application/json"},
    422: {"model": Problem, "description": "Invalid JSON or invalid event; `errors` name the fields"},
}


def _add_event_routes(app: FastAPI, runtime: _rt.Runtime) -> None:
    settings = runtime.settings
    events_total = runtime.telemetry.store.series["eddie_otel_events_total"]
    token = None if settings.webhook_token is None else settings.webhook_token.encode("utf-8", "surrogateescape")
    limit = settings.max_body_bytes

    async def handle(request: Request, type_name: str | None) -> Response:
        try:
            events = await _receive(request, type_name, token, limit)
        except _Refused as refused:
            for name, count in refused.rejected.items():
                events_total.add((name, "rejected"), count)
            return _problem(refused.status, refused.errors, refused.headers)
        accepted: dict[str, int] = {}
        for event in events:
            record_event(event)
            accepted[event.type] = accepted.get(event.type, 0) + 1
        for name, count in accepted.items():
            events_total.add((name, "accepted"), count)
        return JSONResponse({"accepted": len(events)}, status_code=202)

    for type_name, model in EVENT_MODELS.items():
        app.add_api_route(
            f"/events/{type_name}",
            _single(handle, type_name),
            methods=["POST"],
            status_code=202,
            response_model=Accepted,
            responses=_ERROR_RESPONSES,
            summary=f"Record one {type_name} event",
            description=(model.__doc__ or "").strip(),
            openapi_extra=_request_body(model.__name__),
            name=f"post_{type_name}",
            tags=["events"],
        )

    async def post_batch(request: Request) -> Response:
        return await handle(request, None)

    app.add_api_route(
        "/events",
        post_batch,
        methods=["POST"],
        status_code=202,
        response_model=Accepted,
        responses=_ERROR_RESPONSES,
        summary="Record a batch of events, all or none",
        description=(
            "Every event carries its `type`. The batch is validated whole before anything is recorded; "
            "errors name the index and field, like `events[3].chunks`."
        ),
        openapi_extra=_request_body(EventBatch.__name__),
        tags=["events"],
    )

    async def unknown_type(request: Request, type: str) -> Response:
        try:
            _authorize(request, token, UNKNOWN_TYPE)
        except _Refused as refused:
            events_total.add((UNKNOWN_TYPE, "rejected"), 1)
            return _problem(refused.status, refused.errors, refused.headers)
        events_total.add((UNKNOWN_TYPE, "rejected"), 1)
        message = f"unknown event type {type[:64]!r}; known types: {', '.join(EVENT_TYPES)}"
        return _problem(404, [FieldError(field="type", message=message)])

    app.add_api_route("/events/{type}", unknown_type, methods=["POST"], include_in_schema=False)


def _single(
    handle: Callable[[Request, str | None], Awaitable[Response]], type_name: str
) -> Callable[[Request], Awaitable[Response]]:
    async def post_event(request: Request) -> Response:
        return await handle(request, type_name)

    return post_event


def _request_body(schema_name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
        }
    }


def _authorize(request: Request, token: bytes | None, counted: str) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _Refused(
            401,
            [FieldError(field="Authorization", message="missing: send the header 'Authorization: Bearer <token>'")],
            {counted: 1},
            {"WWW-Authenticate": 'Bearer realm="eddie-otel"'},
        )
    # Header values arrive decoded as latin-1: encoding back gives the bytes that were sent.
    if not hmac.compare_digest(given.strip().encode("latin-1"), token):
        raise _Refused(
            401,
            [FieldError(field="Authorization", message="wrong bearer token")],
            {counted: 1},
            {"WWW-Authenticate": 'Bearer realm="eddie-otel", error="invalid_token"'},
        )


def _check_content_type(request: Request, counted: str) -> None:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        shown = media_type or "missing"
        raise _Refused(
            415,
            [FieldError(field="Content-Type", message=f"must be application/json, not {shown[:64]}")],
            {counted: 1},
        )


async def _read_body(request: Request, limit: int, counted: str) -> bytes:
    def too_large(size: str) -> _Refused:
        message = f"body is {size} bytes; the limit is {limit} (EDDIE_OTEL_MAX_BODY_BYTES)"
        return _Refused(413, [FieldError(field="body", message=message)], {counted: 1})

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(declared)
    # Content-Length may be absent (chunked) or wrong: count what actually arrives.
    parts: list[bytes] = []
    size = 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise too_large(f"more than {limit}")
            parts.append(part)
    except ClientDisconnect:
        # Nobody will read the answer; what matters is that nothing is recorded and nothing is logged as a crash.
        raise _Refused(400, [FieldError(field="body", message="the client disconnected")], {counted: 1}) from None
    return b"".join(parts)


async def _receive(request: Request, type_name: str | None, token: bytes | None, limit: int) -> list[BaseEvent]:
    """The events of `request`, all valid; _Refused, counting what was rejected, otherwise."""
    counted = type_name if type_name is not None else BATCH_TYPE
    _authorize(request, token, counted)
    _check_content_type(request, counted)
    body = await _read_body(request, limit, counted)
    try:
        return parse_batch(body) if type_name is None else [parse_event(type_name, body)]
    except InvalidEvents as invalid:
        rejected = _batch_types(body) if type_name is None else {type_name: 1}
        raise _Refused(422, invalid.errors, rejected) from None


def _batch_types(body: bytes) -> dict[str, int]:
    """The events of a refused batch, counted per type (unknown for what names no type)."""
    try:
        # The parser pydantic used: a body too deep for it is refused here too, never a RecursionError.
        events = pydantic_core.from_json(body)["events"]
    except (ValueError, TypeError, KeyError):
        return {BATCH_TYPE: 1}
    if not isinstance(events, list):
        return {BATCH_TYPE: 1}
    counts: dict[str, int] = {}
    for event in events:
        name = event.get("type") if isinstance(event, dict) else None
        name = name if isinstance(name, str) and name in EVENT_MODELS else UNKNOWN_TYPE
        counts[name] = counts.get(name, 0) + 1
    return counts or {BATCH_TYPE: 1}


def _problem(status: int, errors: Sequence[FieldError], headers: dict[str, str] | None = None) -> JSONResponse:
    detail = "; ".join(f"{error.field}: {error.message}" for error in errors)
    content = {"detail": detail, "errors": [error.model_dump() for error in errors]}
    return JSONResponse(content, status_code=status, headers=headers)


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI builder, adding the event models the webhook routes read by hand."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            models = [(model, "validation") for model in (*EVENT_MODELS.values(), EventBatch)]
            _, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(definitions.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    return build
