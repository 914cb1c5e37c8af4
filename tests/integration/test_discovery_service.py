"""`eddie-otel serve` and `eddie-otel demo` announce themselves in EDDIE_OTEL_DISCOVERY_DIR and withdraw at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def announced(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.json"))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EDDIE_OTEL_"))}
    return {**env, **extra}


def test_serve_announces_itself_and_withdraws_on_sigterm(tmp_path: Path) -> None:
    directory = tmp_path / "targets"
    service = subprocess.Popen(
        [sys.executable, "-m", "eddie_otel", "serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(EDDIE_OTEL_DISCOVERY_DIR=str(directory)),
    )
    try:
        assert service.stdout is not None
        line = service.stdout.readline()
        assert line.startswith("eddie-otel: serving on http://127.0.0.1:"), line
        port = int(line.split("http://127.0.0.1:", 1)[1].split(" ", 1)[0])
        (path,) = directory.glob("*.json")
        assert f"; announced in {path};" in line
        (group,) = json.loads(path.read_text(encoding="utf-8"))
        assert group["targets"] == [f"127.0.0.1:{port}"]
        assert group["labels"]["__meta_eddie_pid"] == str(service.pid)
        service.send_signal(signal.SIGTERM)
        output, errors = service.communicate(timeout=30)
    finally:
        service.kill()
        service.wait(10)
    assert service.returncode == 0, errors
    assert output.strip() == "eddie-otel: stopped"
    assert announced(directory) == []


def test_demo_announces_itself_and_withdraws_when_it_ends(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eddie_otel", "demo", "--port", "0", "--duration", "1", "--agents", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(EDDIE_OTEL_DISCOVERY_DIR=str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    assert f"  announced in {tmp_path}{os.sep}eddie-" in result.stdout
    assert announced(tmp_path) == []


def test_serve_with_a_discovery_directory_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "eddie_otel", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(EDDIE_OTEL_DISCOVERY_DIR=str(tmp_path / "file")),
    )
    assert result.returncode == 1
    assert result.stderr == f"eddie-otel serve: EDDIE_OTEL_DISCOVERY_DIR={tmp_path / 'file'} is not a directory\n"
