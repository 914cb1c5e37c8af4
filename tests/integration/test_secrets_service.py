"""No credential of the service's settings reaches what a person or a client can read.

The Grafana URL's user info is not in the status page; a Prometheus that echoes the
request's Authorization header into its error reaches neither GET /metrics/summary?scope=fleet
nor `eddie-otel summary`; an empty webhook token stops the service at start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import eddie_otel
from eddie_otel.cli import main
from eddie_otel.environment import EDDIE_OTEL_GRAFANA_URL, EDDIE_OTEL_PROMETHEUS_URL, EDDIE_OTEL_WEBHOOK_TOKEN
from eddie_otel.errors import ConfigurationError
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from eddie_otel.service.settings import ServiceSettings
from tests.support.echo_server import EchoServer

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "PassW0rd-s3cret"
USERINFO = f"admin:{PASSWORD}"
FORBIDDEN = (PASSWORD, "admin:", "YWRtaW46UGFzc1cwcmQtczNjcmV0")  # the last: base64 of USERINFO


def assert_nothing_secret(text: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in text, f"{secret!r} shown in:\n{text}"


@pytest.fixture
def prometheus() -> Iterator[EchoServer]:
    # A Prometheus refusing every query with an error that repeats the request's headers.
    server = EchoServer(USERINFO, mode="prometheus", status=400)
    yield server
    server.stop()


def test_fleet_summary_over_http_hides_an_echoed_credential(port: int, prometheus: EchoServer) -> None:
    app = create_app(service=ServiceSettings.load({EDDIE_OTEL_PROMETHEUS_URL: prometheus.url}))
    with BackgroundServer(app, "127.0.0.1", port) as server:
        answer = httpx.get(server.url + "/metrics/summary", params={"scope": "fleet"}, timeout=30)
    assert answer.status_code == 502
    assert "Authorization=Basic <redacted>" in answer.text
    assert_nothing_secret(answer.text)


def test_summary_command_hides_an_echoed_credential(prometheus: EchoServer, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["summary", "--prometheus-url", prometheus.url])
    out = capsys.readouterr()
    assert status == 1
    assert out.err.startswith("eddie-otel summary: error: ")
    assert "<redacted>" in out.err
    assert_nothing_secret(out.out + out.err)


def test_the_status_page_links_to_grafana_without_its_user_info(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EDDIE_OTEL_GRAFANA_URL, f"https://{USERINFO}@grafana.example.com/")
    runtime = eddie_otel.configure(serve=False, port=0)
    with BackgroundServer(create_app(runtime), "127.0.0.1", port) as server:
        page = httpx.get(server.url + "/", timeout=30).text
    assert 'href="https://grafana.example.com/d/' in page
    assert_nothing_secret(page)


def test_a_bad_grafana_url_is_refused_without_showing_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EDDIE_OTEL_GRAFANA_URL, f"https://{USERINFO}@grafana example")
    runtime = eddie_otel.configure(serve=False, port=0)
    with pytest.raises(ConfigurationError, match=EDDIE_OTEL_GRAFANA_URL) as refused:
        create_app(runtime)
    assert_nothing_secret(str(refused.value))


@pytest.mark.parametrize("token", ["", " ", "  \t "])
def test_an_empty_webhook_token_is_a_configuration_error(token: str) -> None:
    with pytest.raises(ConfigurationError, match=EDDIE_OTEL_WEBHOOK_TOKEN):
        ServiceSettings.load({EDDIE_OTEL_WEBHOOK_TOKEN: token})
    # Given as an argument, the error names the argument.
    with pytest.raises(ConfigurationError, match="webhook_token"):
        ServiceSettings.load({}, webhook_token=token)


def test_serve_with_an_empty_token_stops_with_one_line(port: int) -> None:
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "EDDIE_OTEL_"))}
    environ[EDDIE_OTEL_WEBHOOK_TOKEN] = "  "
    done = subprocess.run(
        [sys.executable, "-m", "eddie_otel", "serve", "--port", str(port)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert EDDIE_OTEL_WEBHOOK_TOKEN in lines[0]
    assert "serving on" not in done.stdout
