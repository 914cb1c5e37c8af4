"""Helpers shared by the benchmarks: the command line printed at the top, a loopback OTLP sink, free ports."""

from __future__ import annotations

import shlex
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def print_command(name: str) -> None:
    """Print the command that reproduces this run."""
    print(f"command: {shlex.quote(sys.executable)} -m benchmarks {name}", flush=True)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OtlpSink:
    """A loopback HTTP server in a thread that answers 200 to POST /v1/metrics and counts the posts."""

    def __init__(self) -> None:
        sink = self
        self.posts = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 200 if self.path == "/v1/metrics" else 404
                if status == 200:
                    sink.posts += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """The base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
