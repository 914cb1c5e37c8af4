"""The small metrics endpoint of an agent process: the seed's three GETs in a daemon thread, stdlib only.

GET /metrics/prometheus, /metrics/health and /metrics/summary answer here what the
metrics service answers at the same paths, so that :8503 means the same thing in
every process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from eddie_otel._version import __version__
from eddie_otel.errors import EddieOtelError
from eddie_otel.exposition import render

__all__ = ["HEALTH_PATH", "METRICS_PATH", "SUMMARY_PATH", "MetricsServer", "health_body"]

logger = logging.getLogger("eddie_otel")

METRICS_PATH = "/metrics/prometheus"
SUMMARY_PATH = "/metrics/summary"
HEALTH_PATH = "/metrics/health"
_JSON = {"Content-Type": "application/json"}
# How often the serving loop looks for a stop request: shutdown() returns within about this long.
POLL_SECONDS = 0.05


def health_body(service_name: str, started: float) -> dict[str, Any]:
    """The health body both servers answer: status, version, service name and seconds since `started` (monotonic)."""
    return {
        "status": "ok",
        "version": __version__,
        "service": service_name,
        "uptime_seconds": round(time.monotonic() - started, 3),
    }


class MetricsServer:
    """Serves `registry`, the health check and `summary()` at host:port from a daemon thread; `close()` stops it.

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
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise EddieOtelError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}; "
                "set OTEL_EXPORTER_PROMETHEUS_PORT (or port=) to a free port"
            ) from None
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_SECONDS,), name="eddie-otel-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def abandon(self) -> None:
        """Release the port without stopping a thread: what a forked child does with its parent's server.

        The child has the parent's listening socket but not its serving thread, so
        `close()` there would wait forever for a loop that is not running.
        """
        self._server.server_close()


def _handler_for(
    registry: CollectorRegistry,
    service_name: str,
    summary: Callable[[], Mapping[str, Any] | None],
    started: float,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
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
                self._reply(404, f"not found: this endpoint serves {paths}\n".encode(), {"Content-Type": "text/plain"})

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
