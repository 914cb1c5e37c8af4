"""The small metrics endpoint of an agent process: the seed's three GETs in daemon threads, stdlib only.

GET /metrics/prometheus, /metrics/health and /metrics/summary answer here what the
metrics service answers at the same paths, so that :8503 means the same thing in
every process.

It lives inside someone else's application, so it holds its ground the way the
service does against slow and many clients, and never spends the application's
threads or file descriptors on them:

- a request head must arrive whole within READ_TIMEOUT_SECONDS of the connection, and
  a connection lasts at most CONNECTION_SECONDS (a client that stops reading the
  answer); the connection is closed then;
- at most MAX_CONNECTIONS connections are served at once, one thread each; one more is
  answered 503 and closed at once, without a thread;
- bound to loopback, only requests addressed to localhost, 127.0.0.1 or [::1] are
  answered (DNS rebinding); 400 otherwise;
- a client that went away is one debug line, never a traceback on the application's stderr.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from eddie_otel._version import __version__
from eddie_otel.errors import EddieOtelError
from eddie_otel.exposition import render
from eddie_otel.hosts import allowed_names, host_allowed
from eddie_otel.threads import quietly

__all__ = [
    "CONNECTION_SECONDS",
    "HEALTH_PATH",
    "LISTEN_BACKLOG",
    "MAX_CONNECTIONS",
    "METRICS_PATH",
    "READ_TIMEOUT_SECONDS",
    "SUMMARY_PATH",
    "MetricsServer",
    "add_health_check",
    "health_body",
]

logger = logging.getLogger("eddie_otel")

METRICS_PATH = "/metrics/prometheus"
SUMMARY_PATH = "/metrics/summary"
HEALTH_PATH = "/metrics/health"
_JSON = {"Content-Type": "application/json"}
_TEXT = {"Content-Type": "text/plain"}
# How often the serving loop looks for a stop request and for overdue connections:
# shutdown() returns within about this long.
POLL_SECONDS = 0.05
# A scrape's request head is a few hundred bytes: a client that has not sent it whole
# in this long is not a scraper.
READ_TIMEOUT_SECONDS = 5.0
# The longest a connection is kept, answer included: Prometheus gives a scrape 10 s by default.
CONNECTION_SECONDS = 30.0
# Connections served at once (one thread each). A Prometheus scrapes over one connection;
# this leaves room for a few people with curl and keeps the application's own threads and
# descriptors its own.
MAX_CONNECTIONS = 32
# Connections the system queues before the endpoint accepts them (the kernel caps it at somaxconn).
LISTEN_BACKLOG = 128
# The errors of a client that went away mid-request: not the application's business.
_GONE = (ConnectionError, TimeoutError)
_BUSY_BODY = b"busy: too many connections, try again\n"
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_BUSY_BODY),
    _BUSY_BODY,
)


# Extra checks of what the process watches (the Docker watcher): each returns None when all is well,
# else fields that say what is wrong (such as {"docker": "engine unreachable: ..."}).
_health_checks: list[Callable[[], Mapping[str, str] | None]] = []


def add_health_check(check: Callable[[], Mapping[str, str] | None]) -> Callable[[], None]:
    """Have the health body ask `check` too: a mapping it returns is added and makes the status "degraded".

    Returns the function that removes the check again.
    """
    _health_checks.append(check)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            _health_checks.remove(check)

    return remove


def health_body(service_name: str, started: float) -> dict[str, Any]:
    """The health body both servers answer: status, version, service name and seconds since `started` (monotonic)."""
    body: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "service": service_name,
        "uptime_seconds": round(time.monotonic() - started, 3),
    }
    for check in list(_health_checks):
        problem = check()
        if problem:
            body.update(problem)
            body["status"] = "degraded"
    return body


class MetricsServer:
    """Serves `registry`, the health check and `summary()` at host:port from daemon threads; `close()` stops it.

    `summary` is called for each GET /metrics/summary; None answers 503 (nothing to summarise yet).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        service_name: str = "eddie",
        summary: Callable[[], Mapping[str, Any] | None] | None = None,
    ) -> None:
        handler = _handler_for(registry, service_name, summary or (lambda: None), time.monotonic())
        try:
            self._server = _GuardedServer((host, port), handler, allowed_names(host, ()))
        except OSError as error:
            raise EddieOtelError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}; "
                "set OTEL_EXPORTER_PROMETHEUS_PORT (or port=) to a free port"
            ) from None
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_SECONDS,), name="eddie-otel-metrics", daemon=True
        )
        # Its connections' threads are its own: they keep the application's signals blocked too.
        quietly(self._thread.start)

    def close(self) -> None:
        """Stop serving, close the open connections and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._server.cut_all()
        self._thread.join(timeout=5)

    def abandon(self) -> None:
        """Release the port without stopping a thread: what a forked child does with its parent's server.

        The child has the parent's listening socket but not its serving thread, so
        `close()` there would wait forever for a loop that is not running.
        """
        self._server.server_close()


class _GuardedServer(ThreadingHTTPServer):
    """A threading HTTP server with a bounded number of connections, each with deadlines, and a Host rule.

    The serving loop (`service_actions`, every POLL_SECONDS) shuts down the sockets of
    connections past their deadline, which wakes their thread out of its read or write.
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], host_names: frozenset[str] | None
    ) -> None:
        # Names a request's Host must be one of; None: any.
        self.host_names = host_names
        self._lock = threading.Lock()
        # Each open connection and the monotonic time it is cut at; its head read, the longer deadline.
        self._deadlines: dict[socket.socket, float] = {}
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                # The process is out of descriptors: the listening socket stays readable, so
                # pause instead of spinning on accept() until some are free again.
                time.sleep(POLL_SECONDS)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        now = time.monotonic()
        with self._lock:
            admitted = len(self._deadlines) < MAX_CONNECTIONS
            if admitted:
                self._deadlines[request] = now + READ_TIMEOUT_SECONDS
        if not admitted:
            logger.debug("metrics endpoint: %s connections open; refused %s", MAX_CONNECTIONS, client_address)
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        request.settimeout(READ_TIMEOUT_SECONDS)
        try:
            super().process_request(request, client_address)
        except Exception:
            # No thread to be had: the connection is closed, the endpoint goes on.
            logger.warning("metrics endpoint: could not start a thread for a connection", exc_info=True)
            self.shutdown_request(request)

    def head_read(self, request: socket.socket) -> None:
        """The request head of `request` arrived: it now has until the connection deadline to be answered."""
        with self._lock:
            if request in self._deadlines:
                self._deadlines[request] += CONNECTION_SECONDS - READ_TIMEOUT_SECONDS

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._deadlines.pop(request, None)
            # Under the lock: the loop never shuts down a descriptor already closed (and maybe reused).
            super().shutdown_request(request)

    def service_actions(self) -> None:
        now = time.monotonic()
        with self._lock:
            for request, deadline in self._deadlines.items():
                if deadline <= now:
                    self._cut(request)

    def cut_all(self) -> None:
        """Wake every connection's thread by shutting its socket down: what closing the endpoint does."""
        with self._lock:
            for request in self._deadlines:
                self._cut(request)

    def _cut(self, request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (*_GONE, OSError)):
            logger.debug("metrics endpoint: client %s went away: %s", client_address, error)
        else:
            logger.warning("metrics endpoint: a request from %s failed", client_address, exc_info=True)


def _handler_for(
    registry: CollectorRegistry,
    service_name: str,
    summary: Callable[[], Mapping[str, Any] | None],
    started: float,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server: _GuardedServer

        def parse_request(self) -> bool:
            parsed = super().parse_request()
            self.server.head_read(self.request)
            return parsed

        def do_GET(self) -> None:
            if not host_allowed(self.headers.get("Host"), self.server.host_names):
                self._refuse_host()
                return
            path = self.path.split("?", 1)[0]
            if path == METRICS_PATH:
                body, headers = render(registry, self.headers.get("Accept"), self.headers.get("Accept-Encoding"))
                self._reply(200, body, headers)
            elif path == HEALTH_PATH:
                self._reply(200, json.dumps(health_body(service_name, started)).encode(), _JSON)
            elif path == SUMMARY_PATH:
                found = summary()
                if found is None:
                    self._reply(503, b'{"detail": "starting: no summary yet"}', _JSON)
                else:
                    self._reply(200, json.dumps(found).encode(), _JSON)
            else:
                paths = ", ".join((METRICS_PATH, SUMMARY_PATH, HEALTH_PATH))
                self._reply(404, f"not found: this endpoint serves {paths}\n".encode(), _TEXT)

        def _refuse_host(self) -> None:
            header = self.headers.get("Host")
            said = "no Host" if header is None else f"Host {header.strip()[:64]!r}"
            message = f"{said} is not a name of this endpoint; it answers localhost, 127.0.0.1 and [::1]\n"
            self._reply(400, message.encode(), _TEXT)

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("metrics endpoint: " + format, *args)

    return Handler
