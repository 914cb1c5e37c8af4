"""`eddie_otel.cli`: parsing only; every command reaches its handler with typed keyword arguments."""

from __future__ import annotations

from typing import Any

import pytest

from eddie_otel import cli
from eddie_otel.config import MAX_PORT, MIN_PORT
from eddie_otel.ops import doctor, fleet, grafana, stack
from eddie_otel.service import demo, server

OPTIONS = {
    "serve": ["--host", "--port"],
    "demo": ["--host", "--port", "--duration", "--seed", "--agents", "--traces"],
    "grafana-setup": ["--grafana-url", "--prometheus-url", "--api-key", "--dashboard", "--dry-run"],
    "stack": ["DIR", "--force"],
    "doctor": ["--metrics-url", "--prometheus-url", "--grafana-url", "--api-key"],
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every handler replaced by one that records its keyword arguments and returns 0."""
    recorded: list[tuple[str, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def handler(**kwargs: Any) -> int:
            recorded.append((name, kwargs))
            return 0

        return handler

    monkeypatch.setattr(server, "serve_command", recorder("serve"))
    monkeypatch.setattr(demo, "demo_command", recorder("demo"))
    monkeypatch.setattr(grafana, "setup_command", recorder("grafana-setup"))
    monkeypatch.setattr(stack, "stack_command", recorder("stack"))
    monkeypatch.setattr(doctor, "doctor_command", recorder("doctor"))
    monkeypatch.setattr(fleet, "summary_command", recorder("summary"))
    return recorded


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_help_of_every_command_exits_0_and_names_its_options(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: eddie-otel {command} ")
    for option in OPTIONS[command]:
        assert option in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in OPTIONS:
        assert command in out


@pytest.mark.parametrize("port", ["70000", "-1", "eighty"])
def test_bad_port_is_a_one_line_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--port", port])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: eddie-otel serve")
    if port == "eighty":
        assert err[-1] == "eddie-otel serve: error: argument --port: not a port number: 'eighty'"
    else:
        assert err[-1] == (
            f"eddie-otel serve: error: argument --port: port must be between {MIN_PORT} and {MAX_PORT}, not {port}"
        )


def test_serve_dispatches_host_and_port(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "9100"]) == 0
    assert calls == [("serve", {"host": "0.0.0.0", "port": 9100})]


def test_serve_defaults_leave_host_and_port_to_the_settings(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["serve"]) == 0
    assert calls == [("serve", {"host": None, "port": None})]


def test_demo_dispatches_typed_arguments(calls: list[tuple[str, dict[str, Any]]]) -> None:
    argv = ["demo", "--port", "0", "--duration", "1.5", "--seed", "7", "--agents", "3", "--traces", "console"]
    assert cli.main(argv) == 0
    assert calls == [("demo", {"host": None, "port": 0, "duration": 1.5, "seed": 7, "agents": 3, "traces": "console"})]


def test_demo_defaults(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["demo"]) == 0
    assert calls == [("demo", {"host": None, "port": None, "duration": 0.0, "seed": 42, "agents": 4, "traces": None})]


def test_grafana_setup_dispatches_typed_arguments(calls: list[tuple[str, dict[str, Any]]]) -> None:
    argv = ["grafana-setup", "--grafana-url", "http://grafana:3000", "--api-key", "k", "--dashboard", "d.json"]
    assert cli.main([*argv, "--dry-run"]) == 0
    assert calls == [
        (
            "grafana-setup",
            {
                "grafana_url": "http://grafana:3000",
                "prometheus_url": "http://prometheus:9090",
                "api_key": "k",
                "dashboard": "d.json",
                "dry_run": True,
            },
        )
    ]


def test_grafana_setup_needs_a_grafana_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["grafana-setup"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "eddie-otel grafana-setup: error: the following arguments are required: --grafana-url"
    )


def test_stack_dispatches_directory_and_force(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["stack", "out"]) == 0
    assert cli.main(["stack", "out", "--force", "--agents", "8"]) == 0
    assert calls == [
        ("stack", {"directory": "out", "force": False, "agents": 3}),
        ("stack", {"directory": "out", "force": True, "agents": 8}),
    ]


def test_doctor_dispatches_typed_arguments(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["doctor"]) == 0
    assert cli.main(["doctor", "--grafana-url", "http://g:3000", "--api-key", "k", "--discovery-dir", "d"]) == 0
    defaults = {"metrics_url": cli.DEFAULT_METRICS_URL, "prometheus_url": cli.DEFAULT_PROMETHEUS_URL}
    assert calls == [
        ("doctor", {**defaults, "grafana_url": None, "api_key": None, "discovery_dir": None}),
        ("doctor", {**defaults, "grafana_url": "http://g:3000", "api_key": "k", "discovery_dir": "d"}),
    ]


def test_summary_dispatches_prometheus_url_and_job(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["summary", "--prometheus-url", "http://p:9090"]) == 0
    assert cli.main(["summary", "--prometheus-url", "http://p:9090", "--job", "eddie"]) == 0
    assert calls == [
        ("summary", {"prometheus_url": "http://p:9090", "job": None}),
        ("summary", {"prometheus_url": "http://p:9090", "job": "eddie"}),
    ]


def test_handler_exit_status_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "stack_command", lambda **_: 3)
    assert cli.main(["stack", "out"]) == 3
