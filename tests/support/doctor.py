"""Running `eddie-otel doctor` in a test and reading what it printed; processes that announce themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eddie_otel.cli import main
from eddie_otel.ops.doctor import doctor_command


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Run `eddie-otel doctor ARGS`: its exit status and the lines it printed."""
    status = main(["doctor", *args])
    return status, capsys.readouterr().out.splitlines()


def fleet_doctor(
    capsys: pytest.CaptureFixture[str], discovery_dir: Path, prometheus_url: str = "http://127.0.0.1:1"
) -> tuple[int, list[str]]:
    """`eddie-otel doctor --discovery-dir DIR --prometheus-url URL` without --metrics-url: status and lines."""
    status = doctor_command(
        metrics_url=None,
        prometheus_url=prometheus_url,
        grafana_url=None,
        api_key=None,
        discovery_dir=str(discovery_dir),
    )
    return status, capsys.readouterr().out.splitlines()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any OTEL_ or EDDIE_OTEL_ variable, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "EDDIE_OTEL_"))}
    return {**env, **extra}


# An agent on port 0 that announces itself, records `splits` splits, says "ready" and waits for its stdin to close.
_AGENT = """
import sys, eddie_otel
eddie_otel.configure(service_name="eddie-agent", port=0)
for _ in range(int(sys.argv[1])):
    eddie_otel.record_split(agent="a", chunks=2, depth=1)
print("ready", flush=True)
sys.stdin.read()
"""


class Announcing:
    """A process that serves on port 0 and announces itself in `discovery_dir`: an agent, or `eddie-otel serve`."""

    def __init__(self, discovery_dir: Path, *, splits: int | None = None) -> None:
        env = clean_env(EDDIE_OTEL_DISCOVERY_DIR=str(discovery_dir))
        if splits is None:
            command = [sys.executable, "-m", "eddie_otel", "serve", "--host", "127.0.0.1", "--port", "0"]
        else:
            command = [sys.executable, "-c", _AGENT, str(splits)]
        before = set(discovery_dir.glob("*.json")) if discovery_dir.is_dir() else set()
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(("ready", "eddie-otel: serving on")):
            self.stop()
            raise RuntimeError(f"the process said {line!r}")
        [self.file] = set(discovery_dir.glob("*.json")) - before

    def stop(self) -> None:
        """End the process (closing its stdin first, so that an agent ends on its own)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
