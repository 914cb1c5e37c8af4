"""The app factory of the metrics service: metrics, summary, health and event webhooks on one FastAPI app."""

from __future__ import annotations

from dataclasses import fields

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eddie_otel import runtime as _rt
from eddie_otel._version import __version__
from eddie_otel.config import Settings
from eddie_otel.service.docs import add_docs_routes
from eddie_otel.service.events import FieldError
from eddie_otel.service.hosts import HostCheck, allowed_names
from eddie_otel.service.instrumentation import instrument
from eddie_otel.service.metrics import add_metrics_routes
from eddie_otel.service.openapi import openapi_builder
from eddie_otel.service.page import PageSettings, add_page_routes
from eddie_otel.service.schema import problem
from eddie_otel.service.settings import ServiceSettings
from eddie_otel.service.webhooks import add_event_routes

__all__ = ["create_app"]


def create_app(runtime: _rt.Runtime | Settings | None = None, service: ServiceSettings | None = None) -> FastAPI:
    """The metrics service app recording into `runtime`, refusing and allowing what `service` says.

    `runtime` defaults to `configure(serve=False)` (the app serves /metrics/prometheus
    itself); a `Settings` is configured the same way. `service` defaults to
    `ServiceSettings.load()`, from the environment. Bound to a loopback address
    (`runtime.settings.host`), the app answers only requests whose Host is a loopback
    name or one of `service.allowed_hosts`. Starts no server.

    Every refusal, a bad query parameter's included, is the `{"detail", "errors"}` of
    `schema.problem`. HEAD is answered on every GET route: the GET's status and headers, no body.
    """
    runtime = _runtime_for(runtime)
    service = ServiceSettings.load() if service is None else service
    app = FastAPI(
        title="eddie-otel metrics service",
        version=__version__,
        description=(
            "Prometheus metrics, a JSON summary with success indicators, a health check and event "
            "webhooks for the Eddie distributed-fallback agent system."
        ),
        # Paths are exact: a trailing slash is a 404, never a redirect a scraper might not follow.
        redirect_slashes=False,
        # /docs is served by add_docs_routes from the package's own files: FastAPI's loads Swagger UI
        # from a CDN, and its ReDoc page too, which has no offline copy here.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, _invalid_request)
    # Event routes first: routing (and the instrumentation's route lookup) tries routes in order,
    # and webhook posts are the bulk of the traffic.
    add_event_routes(app, runtime, service)
    add_metrics_routes(app, runtime, service)
    page = PageSettings.load()
    add_page_routes(app, page)
    add_docs_routes(app, page)
    if service.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(service.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(HeadAsGet)
    names = allowed_names(runtime.settings.host, service.allowed_hosts)
    if names is not None:
        # Added last, so outermost: a request to a foreign Host reaches no route, CORS included.
        app.add_middleware(HostCheck, names=names)
    if runtime.telemetry.enabled:
        instrument(app, runtime.telemetry.service_meter_provider())
    app.openapi = openapi_builder(  # type: ignore[method-assign]
        app, bearer=service.webhook_token is not None, host_check=names is not None
    )
    return app


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A query parameter FastAPI refused (`?scope=bad`), answered like every other refusal."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(
            field=".".join(str(part) for part in item.get("loc", ())[1:]) or "request",
            message=str(item.get("msg", "invalid")),
        )
        for item in exc.errors()
    ]
    return problem(422, errors or [FieldError(field="request", message="invalid")])


class HeadAsGet:
    """ASGI middleware: HEAD on a GET route answers the GET's status and headers without a body (RFC 9110)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _runtime_for(given: _rt.Runtime | Settings | None) -> _rt.Runtime:
    if isinstance(given, _rt.Runtime):
        return given
    if given is None:
        return _rt.configure(serve=False)
    arguments = {field.name: getattr(given, field.name) for field in fields(given)}
    arguments["serve"] = False
    # The Settings object is complete: the environment must not fill in what it left as None.
    return _rt.configure(environ={}, **arguments)
