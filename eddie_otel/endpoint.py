"""The small metrics endpoint of an agent process: GET /metrics/prometheus in a daemon thread, stdlib only."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from eddie_otel.errors import EddieOtelError
from eddie_otel.exposition import render

__all__ = ["METRICS_PATH", "MetricsServer"]

logger = logging.getLogger("eddie_otel")

METRICS_PATH = "/metrics/prometheus"


class MetricsServer:
    """Serves `registry` at host:port/metrics/prometheus from a daemon thread; `close()` stops it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        handler = _handler_for(registry)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise EddieOtelError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}; "
                "set OTEL_EXPORTER_PROMETHEUS_PORT (or port=) to a free port"
            ) from None
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="eddie-otel-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != METRICS_PATH:
                body = b"not found: metrics are at " + METRICS_PATH.encode() + b"\n"
                self._reply(404, body, {"Content-Type": "text/plain"})
                return
            body, headers = render(registry, self.headers.get("Accept"), self.headers.get("Accept-Encoding"))
            self._reply(200, body, headers)

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
