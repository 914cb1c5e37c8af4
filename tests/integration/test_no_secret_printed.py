"""No credential given to grafana-setup or doctor is ever printed, plain or encoded.

The server here echoes every request header back in its answers, so an error path
that prints what the server said would print the Authorization header; the
commands run for real (`main([...])`, and once as `python -m eddie_otel`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eddie_otel.cli import main
from tests.support.echo_server import EchoServer
from tests.support.grafana_standin import ADMIN, GrafanaStandIn

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "PassW0rd"
USERINFO = f"admin:{PASSWORD}"
ENCODED = "YWRtaW46UGFzc1cwcmQ"  # base64 of admin:PassW0rd, without the padding
TOKEN = "glsa_secretToken_0123456789abcdef_42"
FORBIDDEN = (PASSWORD, ENCODED, "admin:", TOKEN)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer(USERINFO)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFANA_API_KEY", raising=False)


def assert_nothing_secret(text: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in text, f"{secret!r} printed in:\n{text}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    text = out.out + out.err
    assert_nothing_secret(text)
    return status, text


@pytest.mark.parametrize(
    ("mode", "status"), [("json", 500), ("json", 409), ("text", 400), ("text", 401), ("text", 200)]
)
def test_grafana_setup_never_prints_the_user_info_of_grafana_url(
    echo: EchoServer, capsys: pytest.CaptureFixture[str], mode: str, status: int
) -> None:
    echo.mode, echo.status = mode, status

    code, text = run(capsys, "grafana-setup", "--grafana-url", echo.url)

    assert code == 1
    assert f"Grafana at http://127.0.0.1:{echo.port}" in text or f"http://127.0.0.1:{echo.port} did not" in text
    # The credential was used: Basic authentication, as Grafana takes it.
    assert echo.seen
    assert all(sent == f"Basic {ENCODED}=" for sent in echo.seen)


def test_grafana_setup_hides_an_api_key_echoed_back(echo: EchoServer, capsys: pytest.CaptureFixture[str]) -> None:
    echo.mode, echo.status = "text", 500
    code, _ = run(capsys, "grafana-setup", "--grafana-url", echo.url, "--api-key", TOKEN)
    assert code == 1
    assert echo.seen == [f"Bearer {TOKEN}"]


def test_grafana_setup_dry_run_shows_no_user_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(
        capsys,
        "grafana-setup",
        "--grafana-url",
        f"http://{USERINFO}@127.0.0.1:1/grafana",
        "--prometheus-url",
        f"http://{USERINFO}@prometheus:9090",
        "--dry-run",
    )
    assert code == 0
    assert "dry run: nothing is sent to http://127.0.0.1:1/grafana;" in text
    assert "Authorization: Basic <redacted>" in text
    assert "GET /grafana/api/datasources/uid/eddie-prometheus" in text


def test_grafana_setup_shows_the_prometheus_url_without_user_info(capsys: pytest.CaptureFixture[str]) -> None:
    with GrafanaStandIn({TOKEN: ADMIN}) as grafana:
        code, text = run(
            capsys,
            "grafana-setup",
            "--grafana-url",
            grafana.url,
            "--prometheus-url",
            f"http://{USERINFO}@prometheus:9090",
            "--api-key",
            TOKEN,
        )
        assert code == 0, text
        assert "(Eddie Prometheus → http://prometheus:9090): created" in text
        # Grafana stores the URL it is given: the credential reaches Prometheus through Grafana.
        [datasource] = grafana.state.datasources.values()
        assert datasource["url"] == f"http://{USERINFO}@prometheus:9090"


@pytest.mark.parametrize(
    "url",
    [
        f"http://{USERINFO}@127.0.0.1:1",  # nothing listens
        f"http://{USERINFO}@127.0.0.1:notaport",
        f"ftp://{USERINFO}@127.0.0.1:21",
        f"http://{USERINFO}@[::1",
        f"{USERINFO}@127.0.0.1:3000",  # no scheme
    ],
)
def test_grafana_setup_errors_about_the_url_hide_its_user_info(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _ = run(capsys, "grafana-setup", "--grafana-url", url)
    assert code == 1


@pytest.mark.parametrize("status", [200, 500])
def test_doctor_never_prints_user_info_of_metrics_and_prometheus_urls(
    echo: EchoServer, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    echo.mode, echo.status = "doctor", status
    echo.target_health = "up" if status == 200 else "down"

    code, text = run(capsys, "doctor", "--metrics-url", echo.url, "--prometheus-url", echo.url)

    assert f"http://127.0.0.1:{echo.port}/metrics/prometheus" in text
    if status == 200:
        assert code == 0, text
    else:
        assert code == 1
        assert "server said: " in text  # Prometheus' last error is shown, with the credential hidden
    assert set(echo.seen) == {f"Basic {ENCODED}="}


@pytest.mark.parametrize(("status", "key"), [(401, None), (500, None), (200, None), (401, TOKEN), (404, TOKEN)])
def test_doctor_never_prints_user_info_of_grafana_url_or_the_api_key(
    echo: EchoServer, capsys: pytest.CaptureFixture[str], status: int, key: str | None
) -> None:
    echo.mode, echo.status = "doctor", status
    argv = ["doctor", "--metrics-url", echo.url, "--prometheus-url", echo.url, "--grafana-url", echo.url]
    if key:
        argv += ["--api-key", key]

    code, text = run(capsys, *argv)

    assert code == 1
    assert "[5/5] FAIL Grafana has the dashboard" in text
    assert f"Grafana at http://127.0.0.1:{echo.port}" in text or f"http://127.0.0.1:{echo.port} did not" in text
    assert echo.seen[-1] == (f"Bearer {key}" if key else f"Basic {ENCODED}=")


def test_doctor_unreachable_url_with_user_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, "doctor", "--metrics-url", f"http://{USERINFO}@127.0.0.1:1")
    assert code == 1
    assert "cannot reach http://127.0.0.1:1/metrics/prometheus" in text


def test_the_installed_command_prints_no_secret(echo: EchoServer) -> None:
    echo.mode, echo.status = "text", 500
    environment = {**os.environ, "PYTHONPATH": str(REPO), "GRAFANA_API_KEY": ""}
    for argv in (
        ["grafana-setup", "--grafana-url", echo.url],
        ["grafana-setup", "--grafana-url", echo.url, "--prometheus-url", echo.url, "--dry-run"],
        ["doctor", "--metrics-url", echo.url, "--prometheus-url", echo.url, "--grafana-url", echo.url],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "eddie_otel", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
            check=False,
        )
        assert "Traceback" not in done.stderr
        assert_nothing_secret(done.stdout + done.stderr)
    assert f"Basic {ENCODED}=" in echo.seen
