"""Slow clients are closed: a thousand partial requests neither stay open nor slow the health check down."""

from __future__ import annotations

import http.client
import resource
import selectors
import socket
import statistics
import time
from collections.abc import Iterator

import pytest

import eddie_otel
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from eddie_otel.service.slow_clients import READ_TIMEOUT_SECONDS

SLOW_CLIENTS = 1_000
# Each slow client holds a descriptor here and one in the server, in this same process.
DESCRIPTORS_NEEDED = 2 * SLOW_CLIENTS + 256
CLOSED_WITHIN_SECONDS = 30.0


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Raise the soft limit of open files to what the test needs, or skip when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < DESCRIPTORS_NEEDED:
        pytest.skip(f"the hard limit of open files is {hard}; the test needs {DESCRIPTORS_NEEDED}")
    if soft != resource.RLIM_INFINITY and soft < DESCRIPTORS_NEEDED:
        resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS_NEEDED, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _slow_client(port: int, index: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if index % 2:
        # Partial headers: the request line and one header, never the blank line.
        sock.sendall(b"GET /metrics/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    else:
        # Complete headers, a tenth of the body they announce.
        sock.sendall(
            b"POST /events/merge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"chunks_co'
        )
    sock.setblocking(False)
    return sock


def _health_seconds(port: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        started = time.perf_counter()
        connection.request("GET", "/metrics/health")
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    assert response.status == 200
    return elapsed


def _wait_closed(clients: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The clients the server has not closed (no EOF nor reset seen) after `timeout` seconds."""
    selector = selectors.DefaultSelector()
    for sock in clients:
        selector.register(sock, selectors.EVENT_READ)
    open_ = set(clients)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(sock)
                open_.discard(sock)
    selector.close()
    return list(open_)


def test_partial_requests_are_closed_and_health_stays_fast(descriptors: None) -> None:
    assert READ_TIMEOUT_SECONDS < CLOSED_WITHIN_SECONDS
    runtime = eddie_otel.configure(serve=False)
    with BackgroundServer(create_app(runtime)) as server:
        clients = [_slow_client(server.port, index) for index in range(SLOW_CLIENTS)]
        try:
            opened = time.monotonic()
            latencies = [_health_seconds(server.port) for _ in range(40)]
            assert time.monotonic() - opened < READ_TIMEOUT_SECONDS, "measured after the slow clients were closed"

            still_open = _wait_closed(clients, CLOSED_WITHIN_SECONDS - (time.monotonic() - opened))
        finally:
            for sock in clients:
                sock.close()

        assert still_open == []
        assert statistics.median(latencies) < 0.050
        # The partial bodies were refused as disconnected: nothing was recorded.
        assert eddie_otel.summary(runtime)["totals"]["merge_chunks_combined"] == 0
