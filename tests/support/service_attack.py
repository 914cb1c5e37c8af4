"""The worst webhook request, measured against a real `eddie-otel serve` on a loopback port.

`python -m tests.support.service_attack [--clients 1] [--events 340000]` starts the
service in a child process, sends `clients` batches of `events` empty events at once
(about 1 MB each, just under the default body limit) and prints, as JSON: the status
and size of each answer, how long each took, the child's peak and final resident
memory, and the slowest `/metrics/health` answer seen while the batches were in flight.
The tests import `worst_batch`, `serve` and `peak_rss` from here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["Service", "measure", "peak_rss", "serve", "worst_batch"]

REPO = Path(__file__).resolve().parents[2]
# 340 000 "{}," fill a body of about 1 MB, just under the default EDDIE_OTEL_MAX_BODY_BYTES.
WORST_EVENTS = 340_000


def worst_batch(events: int = WORST_EVENTS) -> bytes:
    """`{"events":[{},{},...]}`: the most errors one body under the default limit can ask for."""
    return b'{"events":[' + b",".join([b"{}"] * events) + b"]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A running `eddie-otel serve` child process and its base URL."""

    process: subprocess.Popen[bytes]
    url: str

    def rss(self, key: str = "VmRSS") -> int:
        """The child's resident memory in bytes (`VmHWM` for its peak)."""
        return _status_kb(self.process.pid, key) * 1024


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(key)


def peak_rss(service: Service) -> int:
    """The child's peak resident memory so far, in bytes."""
    return service.rss("VmHWM")


@contextlib.contextmanager
def serve(env: dict[str, str] | None = None) -> Iterator[Service]:
    """`python -m eddie_otel serve` on a free loopback port, with `env` added to the environment."""
    port = _free_port()
    environ = {**os.environ, "OTEL_SDK_DISABLED": "false", **(env or {})}
    if "EDDIE_OTEL_WEBHOOK_TOKEN" not in (env or {}):
        environ.pop("EDDIE_OTEL_WEBHOOK_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "eddie_otel", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx.get(url + "/metrics/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        yield Service(process, url)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Figures:
    """What one run measured."""

    answers: list[dict[str, float | int]] = field(default_factory=list)
    health_seconds: list[float] = field(default_factory=list)
    health_statuses: list[int] = field(default_factory=list)
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0


def measure(service: Service, clients: int = 1, events: int = WORST_EVENTS) -> Figures:
    """Send `clients` worst batches at once while polling health; the figures of that run."""
    body = worst_batch(events)
    figures = Figures(rss_before=service.rss())
    done = threading.Event()
    lock = threading.Lock()

    def attack() -> None:
        started = time.monotonic()
        answer = httpx.post(
            service.url + "/events", content=body, headers={"Content-Type": "application/json"}, timeout=120
        )
        with lock:
            figures.answers.append(
                {
                    "status": answer.status_code,
                    "bytes": len(answer.content),
                    "seconds": round(time.monotonic() - started, 3),
                }
            )

    def poll_health() -> None:
        with httpx.Client(timeout=60) as client:
            while not done.is_set():
                started = time.monotonic()
                answer = client.get(service.url + "/metrics/health")
                figures.health_seconds.append(time.monotonic() - started)
                figures.health_statuses.append(answer.status_code)
                time.sleep(0.05)

    threads = [threading.Thread(target=attack) for _ in range(clients)]
    poller = threading.Thread(target=poll_health)
    poller.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    poller.join()
    figures.rss_peak = peak_rss(service)
    time.sleep(2)
    figures.rss_after = service.rss()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--events", type=int, default=WORST_EVENTS)
    args = parser.parse_args(argv)
    with serve() as service:
        figures = measure(service, args.clients, args.events)
    mib = 1024 * 1024
    print(
        json.dumps(
            {
                "clients": args.clients,
                "request_bytes": len(worst_batch(args.events)),
                "answers": figures.answers,
                "health_max_seconds": round(max(figures.health_seconds, default=0.0), 3),
                "health_polls": len(figures.health_seconds),
                "rss_before_mib": round(figures.rss_before / mib, 1),
                "rss_peak_mib": round(figures.rss_peak / mib, 1),
                "rss_after_mib": round(figures.rss_after / mib, 1),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
