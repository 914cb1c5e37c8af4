"""`eddie-otel docker-watch` and `serve --docker`: parsing, dispatch, and the missing extra."""

from __future__ import annotations

from typing import Any

import pytest

from eddie_otel import cli
from eddie_otel.docker import DOCKER_EXTRA_MISSING, command
from eddie_otel.service import server


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    recorded: list[tuple[str, dict[str, Any]]] = []

    def handler(name: str) -> Any:
        def run(**kwargs: Any) -> int:
            recorded.append((name, kwargs))
            return 0

        return run

    monkeypatch.setattr(command, "docker_watch_command", handler("docker-watch"))
    monkeypatch.setattr(server, "serve_command", handler("serve"))
    return recorded


def test_docker_watch_defaults(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["docker-watch"]) == 0
    assert calls == [("docker-watch", {"docker_host": None, "label": "eddie.agent", "host": None, "port": None})]


def test_docker_watch_options(calls: list[tuple[str, dict[str, Any]]]) -> None:
    argv = ["docker-watch", "--docker-host", "tcp://10.0.0.2:2375", "--label", "eddie.agent=codegen", "--port", "9"]
    assert cli.main([*argv, "--host", "0.0.0.0"]) == 0
    assert calls == [
        (
            "docker-watch",
            {"docker_host": "tcp://10.0.0.2:2375", "label": "eddie.agent=codegen", "host": "0.0.0.0", "port": 9},
        )
    ]


def test_serve_docker(calls: list[tuple[str, dict[str, Any]]]) -> None:
    assert cli.main(["serve", "--docker", "--docker-host", "unix:///run/docker.sock"]) == 0
    assert calls == [("serve", {"host": None, "port": None, "docker": True, "docker_host": "unix:///run/docker.sock"})]


def test_without_the_docker_extra_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(command, "sdk_installed", lambda: False)
    assert command.docker_watch_command(docker_host=None, label="eddie.agent", host=None, port=0) == 2
    assert capsys.readouterr().err.strip() == DOCKER_EXTRA_MISSING


def test_the_default_port_is_beside_the_agents() -> None:
    assert command.DEFAULT_PORT == cli.DOCKER_WATCH_PORT == 8504
