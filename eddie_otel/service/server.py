"""Serving the app: uvicorn in a background thread, and the `eddie-otel serve` command.

The listening socket is bound before uvicorn starts, so a port already taken is a
one-line error rather than a traceback, and port 0 picks a free port whose number
is known. Connections whose request does not arrive whole in time are closed
(`eddie_otel.service.slow_clients`). With EDDIE_OTEL_DISCOVERY_DIR set, the service announces
itself there like an agent process, once its port is bound. The command's main thread only waits for
SIGINT or SIGTERM, then stops the server gracefully (which withdraws the announcement).
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from eddie_otel.endpoint import HEALTH_PATH, METRICS_PATH, SUMMARY_PATH
from eddie_otel.errors import EddieOtelError
from eddie_otel.runtime import Runtime, configure, shutdown
from eddie_otel.service.app import create_app
from eddie_otel.service.slow_clients import KEEP_ALIVE_SECONDS, SlowClientClosingProtocol
from eddie_otel.stopping import stop_signals
from eddie_otel.threads import quietly

__all__ = ["BackgroundServer", "bind", "serve_command", "start_service", "stop_signals", "urls"]

# How long a graceful stop waits for requests in flight before closing their connections.
GRACEFUL_SECONDS = 5.0


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on host:port; EddieOtelError with a one-line reason when that is impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise EddieOtelError(f"cannot listen on {host}:{port}: unknown host ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Allows a restart while old connections linger in TIME_WAIT; a live listener still refuses the bind.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            reason = "the port is already in use; choose another with --port (or OTEL_EXPORTER_PROMETHEUS_PORT)"
        else:
            reason = error.strerror or str(error)
        raise EddieOtelError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """`app` served by uvicorn on host:port in a daemon thread (port 0 picks a free port); a context manager."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, like http://127.0.0.1:8503."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Bind, start serving and wait until requests are answered; EddieOtelError when it cannot."""
        sock = bind(self.host, self.port)
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
            http=SlowClientClosingProtocol,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="eddie-otel-service", daemon=True
        )
        quietly(self._thread.start)
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise EddieOtelError(f"the metrics service did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = GRACEFUL_SECONDS + 5) -> None:
        """Stop serving: requests in flight get GRACEFUL_SECONDS to finish; the port is released."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> BackgroundServer:
        return self.start() if self._thread is None else self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def urls(base: str) -> dict[str, str]:
    """Where to look: the metrics, summary and health URLs under `base`."""
    return {"metrics": base + METRICS_PATH, "summary": base + SUMMARY_PATH, "health": base + HEALTH_PATH}


def start_service(
    host: str | None, port: int | None, trace_exporters: str | None = None
) -> tuple[Runtime, BackgroundServer]:
    """Configure from `host` and `port` (None: the environment) and start the service; EddieOtelError if it cannot.

    `trace_exporters` (otlp, console, none; None: OTEL_TRACES_EXPORTER) says where spans go. With a
    discovery directory the bound port is announced there; `shutdown()` withdraws it.
    """
    runtime = configure(host=host, port=port, serve=False, trace_exporters=trace_exporters)
    server = BackgroundServer(create_app(runtime), runtime.settings.host, runtime.settings.port)
    try:
        server.start()
        runtime.announce(server.port)
    except EddieOtelError:
        server.stop()
        shutdown()
        raise
    return runtime, server


def _announced(runtime: Runtime) -> str:
    """Where the runtime's endpoint is announced, as a clause for the start-up line ("" when nowhere)."""
    return f"; announced in {runtime.announcement.path}" if runtime.announcement is not None else ""


def serve_command(*, host: str | None, port: int | None, docker: bool = False, docker_host: str | None = None) -> int:
    """`eddie-otel serve`: run the metrics service on host:port (None: the environment) until SIGINT or SIGTERM.

    With `docker`, the Docker watcher records the labelled containers of the engine at
    `docker_host` (None: DOCKER_HOST, else the local socket) into the service's runtime.
    """
    if docker:
        from eddie_otel.docker import DOCKER_EXTRA_MISSING, sdk_installed

        if not sdk_installed():
            print(DOCKER_EXTRA_MISSING, file=sys.stderr)
            return 2
    stop = threading.Event()
    with stop_signals(stop):
        try:
            runtime, server = start_service(host, port)
        except EddieOtelError as error:
            print(f"eddie-otel serve: {error}", file=sys.stderr)
            return 1
        watcher = None
        if docker:
            from eddie_otel.docker import DockerWatcher

            watcher = DockerWatcher(docker_host=docker_host).start()
            print(f"eddie-otel: watching {watcher.where} for containers labelled {watcher.label}", flush=True)
        where = urls(server.url)
        print(
            f"eddie-otel: serving on {server.url} (metrics {where['metrics']}, "
            f"summary {where['summary']}, health {where['health']}){_announced(runtime)}; Ctrl-C stops",
            flush=True,
        )
        while not stop.wait(0.5):
            if not server.running:
                print("eddie-otel serve: the server stopped unexpectedly", file=sys.stderr)
                if watcher is not None:
                    watcher.stop()
                shutdown()
                return 1
        if watcher is not None:
            watcher.stop()
        server.stop()
        shutdown()
    print("eddie-otel: stopped", flush=True)
    return 0
