"""The status page at /: one HTML page, its script and its style, served from the package under a strict CSP.

The page is static: its script polls /metrics/summary and draws what it reads, so the
page needs nothing from elsewhere and reads nothing but what the summary already shows.
The Grafana link, when configured, is written into the HTML on the server; no script
is ever inline, so the Content-Security-Policy can forbid inline code altogether.
"""

from __future__ import annotations

import html
import importlib.resources
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from eddie_otel import environment as env
from eddie_otel.config import Option, load_options
from eddie_otel.endpoint import HEALTH_PATH, METRICS_PATH, SUMMARY_PATH
from eddie_otel.errors import ConfigurationError
from eddie_otel.ops.credentials import Located
from eddie_otel.ops.dashboard.render import UID as DASHBOARD_UID

__all__ = [
    "DOCS_PATH",
    "PAGE_PATH",
    "REFRESH_SECONDS",
    "STATIC_PREFIX",
    "PageSettings",
    "add_page_routes",
    "content_security_policy",
    "security_headers",
    "static_text",
]

PAGE_PATH = "/"
STATIC_PREFIX = "/static/"
DOCS_PATH = "/docs"
# Often enough to watch a run move, rarely enough that the page's own requests stay noise.
REFRESH_SECONDS = 2.0

# The page's own files, with the media type each is served as; nothing else under STATIC_PREFIX exists.
_ASSETS: dict[str, str] = {
    "format.js": "text/javascript; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# A CSP source: a scheme and host (and port), no path, nothing that could end the directive.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@dataclass(frozen=True)
class PageSettings:
    """What the status page can be told; build it with `PageSettings.load()`."""

    # Grafana's base URL, without any user info; the page then links to the eddie dashboard there.
    grafana_url: str | None = None
    # Origins allowed to show the page in a frame besides the service itself (a Streamlit app, say).
    frame_ancestors: tuple[str, ...] = ()

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **arguments: Any) -> PageSettings:
        """Page settings from `arguments` (None means "not given"), then `environ`, then defaults."""
        return load_options(cls, _OPTIONS, environ, arguments)

    @property
    def dashboard_url(self) -> str | None:
        """The eddie dashboard in Grafana, or None without a Grafana URL."""
        return None if self.grafana_url is None else f"{self.grafana_url}/d/{DASHBOARD_UID}"


def _check_grafana_url(name: str, value: Any) -> str:
    # A user and password in the URL are for the ops commands (grafana-setup, doctor): the page is read by
    # anyone who can reach the service, so its link points at Grafana without them.
    url = Located.parse(str(value).strip()).url.rstrip("/")
    if not re.fullmatch(r"https?://[^\s\"'<>@]+", url):
        raise ConfigurationError(f"{name} must be a URL like http://localhost:3000, not {url!r}")
    return url


def _check_frame_ancestors(name: str, value: Any) -> tuple[str, ...]:
    given = value.replace(",", " ").split() if isinstance(value, str) else [str(part) for part in value]
    for origin in given:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigurationError(f"{name} must list origins like http://localhost:8501, not {origin!r}")
    return tuple(dict.fromkeys(given))


_OPTIONS: dict[str, Option] = {
    "grafana_url": Option(env.EDDIE_OTEL_GRAFANA_URL, lambda name, raw: raw, _check_grafana_url),
    "frame_ancestors": Option(env.EDDIE_OTEL_FRAME_ANCESTORS, lambda name, raw: raw, _check_frame_ancestors),
}


def content_security_policy(frame_ancestors: tuple[str, ...] = ()) -> str:
    """The CSP: everything from the service itself, no inline code, framed by itself and `frame_ancestors`."""
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Swagger UI's stylesheet draws its icons as data: SVGs.
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors " + " ".join(("'self'", *frame_ancestors)),
    ]
    return "; ".join(directives)


def security_headers(settings: PageSettings) -> dict[str, str]:
    """The headers of every page and asset: the CSP, no sniffing, no referrer, revalidated on each load."""
    return {
        "Content-Security-Policy": content_security_policy(settings.frame_ancestors),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def static_text(name: str) -> str:
    """The text of the shipped file static/`name`."""
    return importlib.resources.files("eddie_otel.service").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def _page(settings: PageSettings) -> str:
    dashboard = settings.dashboard_url
    grafana = (
        ""
        if dashboard is None
        else f'<a id="grafana-link" href="{html.escape(dashboard)}" rel="noopener noreferrer">Grafana dashboard</a>'
    )
    return string.Template(static_text("index.html")).substitute(
        summary_path=html.escape(SUMMARY_PATH),
        metrics_path=html.escape(METRICS_PATH),
        health_path=html.escape(HEALTH_PATH),
        docs_path=html.escape(DOCS_PATH),
        static=html.escape(STATIC_PREFIX),
        refresh_ms=int(REFRESH_SECONDS * 1000),
        grafana_link=grafana,
    )


def add_page_routes(app: FastAPI, settings: PageSettings | None = None) -> None:
    """Add GET / (the status page) and its files under /static/; `settings` defaults to `PageSettings.load()`."""
    settings = PageSettings.load() if settings is None else settings
    headers = security_headers(settings)
    page = _page(settings).encode()
    assets = {name: static_text(name).encode() for name in _ASSETS}

    @app.get(PAGE_PATH, include_in_schema=False)
    def status_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    def add_asset(name: str) -> None:
        body, media_type = assets[name], _ASSETS[name]

        @app.get(STATIC_PREFIX + name, include_in_schema=False, name=f"static:{name}")
        def asset() -> Response:
            return Response(body, media_type=media_type, headers=headers)

    for name in _ASSETS:
        add_asset(name)
