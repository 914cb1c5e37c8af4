"""`eddie-otel docker-watch`: the watcher beside the agent endpoint, until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import sys
import threading

from eddie_otel.docker import DOCKER_EXTRA_MISSING, sdk_installed
from eddie_otel.docker.watcher import DEFAULT_LABEL, DockerWatcher
from eddie_otel.errors import EddieOtelError
from eddie_otel.runtime import configure, shutdown
from eddie_otel.stopping import stop_signals

__all__ = ["DEFAULT_PORT", "docker_watch_command"]

# The watcher's endpoint: beside the agents' 8503 on the same host.
DEFAULT_PORT = 8504


def _log_to_stderr() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def docker_watch_command(*, docker_host: str | None, label: str, host: str | None, port: int | None) -> int:
    """Serve the agent endpoint on host:port (default 127.0.0.1:8504) and record the labelled containers."""
    if not sdk_installed():
        print(DOCKER_EXTRA_MISSING, file=sys.stderr)
        return 2
    _log_to_stderr()
    stop = threading.Event()
    with stop_signals(stop):
        try:
            runtime = configure(host=host, port=DEFAULT_PORT if port is None else port, serve=True)
        except EddieOtelError as error:
            print(f"eddie-otel docker-watch: {error}", file=sys.stderr)
            return 1
        server = runtime.server
        where = f"http://{runtime.settings.host}:{server.port}" if server is not None else "(no endpoint)"
        watcher = DockerWatcher(docker_host=docker_host, label=label or DEFAULT_LABEL).start()
        print(
            f"eddie-otel: watching {watcher.where} for containers labelled {watcher.label}; "
            f"metrics on {where}/metrics/prometheus; Ctrl-C stops",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        watcher.stop()
        shutdown()
    print("eddie-otel: stopped", flush=True)
    return 0
