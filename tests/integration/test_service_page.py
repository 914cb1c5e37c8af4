"""The status page and /docs over HTTP: what is served, with which headers, and the page's settings."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from eddie_otel import ConfigurationError
from eddie_otel.service import create_app
from eddie_otel.service.page import PageSettings, content_security_policy
from eddie_otel.service.server import BackgroundServer

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
SERVED = [
    ("/", "text/html; charset=utf-8"),
    ("/static/status.js", "text/javascript; charset=utf-8"),
    ("/static/format.js", "text/javascript; charset=utf-8"),
    ("/static/status.css", "text/css; charset=utf-8"),
    ("/static/favicon.svg", "image/svg+xml"),
    ("/docs", "text/html; charset=utf-8"),
    ("/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("/docs/swagger-ui.css", "text/css; charset=utf-8"),
    ("/docs/swagger-init.js", "text/javascript; charset=utf-8"),
]


@pytest.fixture
def service(port: int) -> Iterator[httpx.Client]:
    """A client of the service (configured from the environment) on a free loopback port."""
    with (
        BackgroundServer(create_app(), "127.0.0.1", port) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


@pytest.mark.parametrize(("path", "media_type"), SERVED)
def test_every_file_is_served_under_the_csp(service: httpx.Client, path: str, media_type: str) -> None:
    response = service.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "unsafe-inline" not in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_pages_load_nothing_from_elsewhere_and_run_no_inline_code(service: httpx.Client, path: str) -> None:
    page = service.get(path).text

    assert "http://" not in page.replace('xmlns="http://www.w3.org', "")
    assert "https://" not in page
    assert "<style" not in page
    assert " style=" not in page
    assert not re.search(r"\son[a-z]+\s*=", page)  # no onload= or onclick= handlers
    for script in page.split("<script")[1:]:
        assert script.lstrip().startswith("src="), script


def test_the_page_links_the_raw_endpoints_and_no_grafana_by_default(service: httpx.Client) -> None:
    page = service.get("/").text

    for path in ("/metrics/prometheus", "/metrics/summary", "/metrics/health", "/docs"):
        assert f'href="{path}"' in page
    assert 'data-summary-url="/metrics/summary"' in page
    assert "grafana-link" not in page


def test_the_page_has_a_fallback_card_and_the_timeouts_beside_the_latency(service: httpx.Client) -> None:
    page = service.get("/").text

    # Before its script has read a summary, the card says there is nothing to show, not zeros.
    assert '<ul id="fallback" class="figures" hidden></ul>' in page
    assert '<p id="fallback-empty" class="empty">No task has been split yet.</p>' in page
    headings = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', page.split('id="latency"')[1].split("</thead>")[0])
    assert headings == ["Stage", "Samples", "p50", "p95", "p99", "Timeout", "Recom&shy;mended"]


def test_grafana_and_frame_ancestors_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("EDDIE_OTEL_GRAFANA_URL", "http://grafana.internal:3000/")
    monkeypatch.setenv("EDDIE_OTEL_FRAME_ANCESTORS", "http://localhost:8501, https://apps.example")
    monkeypatch.setenv("EDDIE_OTEL_WEBHOOK_TOKEN", "never-shown")

    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        response = httpx.get(server.url + "/", timeout=10)

    assert 'href="http://grafana.internal:3000/d/eddie-distributed-fallback"' in response.text
    assert response.headers["content-security-policy"].endswith(
        "frame-ancestors 'self' http://localhost:8501 https://apps.example"
    )
    assert "never-shown" not in response.text


def test_the_page_and_its_files_stay_out_of_the_openapi_document(service: httpx.Client) -> None:
    paths = service.get("/openapi.json").json()["paths"]

    assert not [path for path in paths if path == "/" or path.startswith(("/static", "/docs"))]


@pytest.mark.parametrize("path", ["/static/", "/static/index.html", "/static/../page.py", "/docs/index.html"])
def test_nothing_else_is_served(service: httpx.Client, path: str) -> None:
    assert service.get(path).status_code == 404


def test_settings_default_to_no_grafana_and_self_framing_only() -> None:
    settings = PageSettings.load({})

    assert (settings.grafana_url, settings.dashboard_url, settings.frame_ancestors) == (None, None, ())
    assert content_security_policy(settings.frame_ancestors).endswith("frame-ancestors 'self'")


def test_arguments_win_over_the_environment() -> None:
    settings = PageSettings.load({"EDDIE_OTEL_GRAFANA_URL": "http://a:3000"}, grafana_url="https://b.example/grafana/")

    assert settings.dashboard_url == "https://b.example/grafana/d/eddie-distributed-fallback"


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("EDDIE_OTEL_GRAFANA_URL", "grafana:3000", "EDDIE_OTEL_GRAFANA_URL must be a URL like http://localhost:3000"),
        ("EDDIE_OTEL_GRAFANA_URL", 'http://a"b', "EDDIE_OTEL_GRAFANA_URL must be a URL"),
        ("EDDIE_OTEL_FRAME_ANCESTORS", "*", "EDDIE_OTEL_FRAME_ANCESTORS must list origins like http://localhost:8501"),
        ("EDDIE_OTEL_FRAME_ANCESTORS", "http://a/path", "EDDIE_OTEL_FRAME_ANCESTORS must list origins"),
        ("EDDIE_OTEL_FRAME_ANCESTORS", "'unsafe-inline'", "EDDIE_OTEL_FRAME_ANCESTORS must list origins"),
        ("EDDIE_OTEL_FRAME_ANCESTORS", "http://a;script-src", "EDDIE_OTEL_FRAME_ANCESTORS must list origins"),
    ],
)
def test_invalid_values_name_their_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PageSettings.load({variable: raw})
