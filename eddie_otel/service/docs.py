"""Swagger UI at /docs from files the package installs, under the status page's CSP, so it works offline.

FastAPI's own /docs loads Swagger UI from a CDN and starts it with an inline script;
here the bundle and stylesheet come from the swagger-ui-bundle-v2 distribution and the
start-up script is a shipped file that reads the OpenAPI URL from a data attribute.
"""

from __future__ import annotations

import html

from fastapi import FastAPI
from fastapi.responses import Response
from swagger_ui_bundle import swagger_ui_path

from eddie_otel.service.page import DOCS_PATH, STATIC_PREFIX, PageSettings, security_headers, static_text

__all__ = ["DOCS_ASSETS", "add_docs_routes"]

# Swagger UI's files served under /docs/, with their media types.
DOCS_ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-init.js": "text/javascript; charset=utf-8",
}


def _read(name: str) -> bytes:
    if name == "swagger-init.js":
        return static_text(name).encode()
    return bytes(swagger_ui_path.joinpath(name).read_bytes())


def _page(app: FastAPI) -> str:
    title = html.escape(f"{app.title} - Swagger UI")
    openapi_url = html.escape(app.openapi_url or "/openapi.json")
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        f'<link rel="icon" href="{STATIC_PREFIX}favicon.svg" type="image/svg+xml">\n'
        f'<link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">\n'
        "</head>\n<body>\n"
        f'<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>\n'
        f'<script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>\n'
        f'<script src="{DOCS_PATH}/swagger-init.js"></script>\n'
        "</body>\n</html>\n"
    )


def add_docs_routes(app: FastAPI, settings: PageSettings | None = None) -> None:
    """Add GET /docs and Swagger UI's files under /docs/; `app` must be built with `docs_url=None`."""
    settings = PageSettings.load() if settings is None else settings
    headers = security_headers(settings)
    page = _page(app).encode()

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    def add_asset(name: str) -> None:
        body, media_type = _read(name), DOCS_ASSETS[name]

        @app.get(f"{DOCS_PATH}/{name}", include_in_schema=False, name=f"docs:{name}")
        def asset() -> Response:
            return Response(body, media_type=media_type, headers=headers)

    for name in DOCS_ASSETS:
        add_asset(name)
