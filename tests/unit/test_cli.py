"""`eddie_otel.cli`: parsing only; every command reaches its handler with typed keyword arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
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
    # A description is printed as written: a doubled percent sign would show as it is.
    assert "%%" not in out


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
    assert calls == [("serve", {"host": "0.0.0.0", "port": 9100, "docker": False, "docker_host": None})]


def test_serve_defaults_leave_host_and_port_to_the_settings(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["serve"]) == 0
    assert calls == [("serve", {"host": None, "port": None, "docker": False, "docker_host": None})]


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
    defaults = {"metrics_url": None, "prometheus_url": cli.DEFAULT_PROMETHEUS_URL}
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


# The start of a fresh interpreter's script: importing the modules in BLOCKED (or below them) raises
# ModuleNotFoundError, as when the distribution that ships them is not installed.
_BLOCK = """
import importlib.abc, sys

BLOCKED = {blocked!r}


class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Missing())
"""
# Then `eddie-otel ARGV`; the script's last line of output lists the modules of the extra that were loaded.
_RUN = """
from eddie_otel import cli

try:
    status = cli.main({argv!r})
finally:
    extra = ("fastapi", "starlette", "uvicorn", "pydantic")
    print("loaded:", sorted(name for name in sys.modules if name.split(".")[0] in extra))
sys.exit(status)
"""
# The top-level modules the `service` extra brings.
SERVICE_MODULES = ("fastapi", "starlette", "uvicorn", "pydantic", "pydantic_core", "swagger_ui_bundle")


def python_without(blocked: tuple[str, ...], code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new interpreter where the modules `blocked` cannot be imported."""
    script = _BLOCK.format(blocked=blocked) + code
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def eddie_otel_without(blocked: tuple[str, ...], argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`eddie-otel ARGV` in a new interpreter where the modules `blocked` cannot be imported."""
    return python_without(blocked, _RUN.format(argv=argv), cwd)


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("missing", ["fastapi", "uvicorn", "pydantic"])
def test_the_service_without_its_extra_is_one_line_and_status_2(command: str, missing: str, tmp_path: Path) -> None:
    done = eddie_otel_without((missing,), [command], tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "eddie-otel: the metrics service needs the service extra: pip install 'eddie-otel[service]'\n"
    )
    assert done.stderr == cli.SERVICE_EXTRA_MISSING + "\n"
    assert done.stdout.startswith("loaded: ")


def test_a_missing_module_outside_the_extra_is_not_blamed_on_it(tmp_path: Path) -> None:
    done = eddie_otel_without(("eddie_otel.service.server",), ["serve"], tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "No module named 'eddie_otel.service.server'" in done.stderr
    assert cli.SERVICE_EXTRA_MISSING not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--help"],
        ["demo", "--help"],
        ["slo", "--format", "sloth"],
        ["summary", "--prometheus-url", "http://127.0.0.1:1"],
        ["doctor", "--metrics-url", "http://127.0.0.1:1", "--prometheus-url", "http://127.0.0.1:1"],
        ["grafana-setup", "--grafana-url", "http://127.0.0.1:1", "--dry-run"],
        ["stack", "stack"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_every_other_command_runs_without_the_service_extra(argv: list[str], tmp_path: Path) -> None:
    done = eddie_otel_without(SERVICE_MODULES, argv, tmp_path)
    # Each ends as it does with the extra (summary and doctor find nothing listening: status 1), never
    # with the extra's line or a traceback, and no module of the extra was loaded on the way.
    assert "Traceback" not in done.stderr, done.stderr
    assert cli.SERVICE_EXTRA_MISSING not in done.stderr
    assert done.returncode in (0, 1), done.stderr
    assert done.stdout.splitlines()[-1] == "loaded: []"


def test_top_level_help_runs_without_the_service_extra(tmp_path: Path) -> None:
    done = eddie_otel_without(SERVICE_MODULES, ["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: eddie-otel ")
    assert done.stdout.splitlines()[-1] == "loaded: []"


def test_no_module_outside_the_service_imports_it_or_its_extra(tmp_path: Path) -> None:
    # What `make generate` and every ops command import, and what an agent process imports.
    done = python_without(
        SERVICE_MODULES,
        "import importlib, pkgutil, eddie_otel\n"
        "for module in pkgutil.walk_packages(eddie_otel.__path__, 'eddie_otel.'):\n"
        "    if not module.name.startswith('eddie_otel.service') and module.name != 'eddie_otel.__main__':\n"
        "        importlib.import_module(module.name)\n"
        "print(sorted(name for name in sys.modules if name.startswith('eddie_otel.service')))\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
