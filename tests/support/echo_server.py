"""A server that repeats each request's headers in its answers.

An error path that prints what a server said would print the request's Authorization header:
the tests that no credential is ever shown run their commands and the service against it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["EchoServer"]


class EchoServer:
    """Answers every request with `status` and a body that repeats the request's headers.

    `mode` picks the body: "json" ({"message": <headers>}), "text" (the headers as text),
    "prometheus" (a Prometheus API error naming the headers) or "doctor" (a metrics
    endpoint, a Prometheus whose only target is down with the headers as its last error, and
    a Grafana dashboard lookup answering `status` with the headers). `url` carries `userinfo`.
    """

    def __init__(self, userinfo: str, mode: str = "json", status: int = 500) -> None:
        self.userinfo = userinfo
        self.status = status
        self.mode = mode
        self.target_health = "up"
        self.seen: list[str] = []
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                headers = "; ".join(f"{name}={value}" for name, value in self.headers.items())
                echo.seen.append(self.headers.get("Authorization") or "")
                status, body = echo.answer(self.path, headers)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if body.startswith("{") else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def answer(self, path: str, headers: str) -> tuple[int, str]:
        if self.mode == "json":
            return self.status, json.dumps({"message": f"request headers: {headers}"})
        if self.mode == "text":
            return self.status, f"request headers: {headers}\n"
        if self.mode == "prometheus":
            return self.status, json.dumps({"status": "error", "errorType": "bad_data", "error": f"rejected {headers}"})
        if path.startswith("/metrics/prometheus"):
            return 200, f"# TYPE task_split_total counter\n# request headers: {headers}\n"
        if path.startswith("/api/v1/targets"):
            target = {
                "scrapeUrl": f"http://{self.userinfo}@127.0.0.1:{self.port}/metrics/prometheus",
                "health": self.target_health,
                "lastError": f"server said: {headers}",
            }
            return 200, json.dumps({"status": "success", "data": {"activeTargets": [target]}})
        if path.startswith("/api/v1/query"):
            return 200, json.dumps({"status": "success", "data": {"result": [{"metric": {}, "value": [0, "1"]}]}})
        return self.status, f"request headers: {headers}"

    @property
    def url(self) -> str:
        """The base URL with the user and password in it."""
        return f"http://{self.userinfo}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
