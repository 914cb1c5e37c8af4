"""The agent endpoint holds against slow and many clients, in an application's own process.

Each test starts a real application process (configure(port=...) with a 256-descriptor
limit) and attacks its endpoint over loopback sockets, as a slow-loris client would.
"""

from __future__ import annotations

import http.client
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eddie_otel.endpoint import HEALTH_PATH, MAX_CONNECTIONS, METRICS_PATH, READ_TIMEOUT_SECONDS, SUMMARY_PATH

ROOT = Path(__file__).resolve().parents[2]
# The application: a descriptor limit many small containers have, eddie's endpoint, and a
# command loop the test drives through stdin ("open": can it still open a file?).
APPLICATION = """
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
import eddie_otel
eddie_otel.configure(port=int(sys.argv[1]), host=sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "open":
        try:
            with open(os.devnull):
                print("opened", flush=True)
        except OSError as error:
            print(f"cannot open: {error}", flush=True)
"""
PARTIAL_HEAD = b"GET /metrics/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
# Generous: the endpoint cuts a slow client after READ_TIMEOUT_SECONDS; a loaded machine is slower.
CUT_WITHIN_SECONDS = READ_TIMEOUT_SECONDS + 20


class Application:
    """An application process serving eddie's endpoint at `port`, driven through its stdin."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        environment = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "EDDIE_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-c", APPLICATION, str(port), host],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready", self.stop()

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/task"))

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def can_open_a_file(self) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("open\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def stop(self) -> str:
        """Stop the application; its stderr."""
        _, stderr = self.process.communicate(timeout=60)
        return stderr


@pytest.fixture
def application(port: int) -> Iterator[Application]:
    app = Application(port)
    yield app
    if app.process.poll() is None:
        app.process.kill()
        app.process.wait(timeout=30)


def _connect_partial(port: int, count: int) -> list[socket.socket]:
    """`count` connections that each send part of a request head and then nothing."""
    clients = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            sock.sendall(PARTIAL_HEAD)
        except OSError:
            # Refused at once (the endpoint's connection cap): it holds nothing.
            sock.close()
            continue
        clients.append(sock)
    return clients


def _closed_by_server(clients: list[socket.socket], timeout: float) -> int:
    """How many of `clients` the server answered or closed within `timeout` seconds."""
    selector = selectors.DefaultSelector()
    for sock in clients:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    waiting = set(clients)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            selector.unregister(sock)
            waiting.discard(sock)
    selector.close()
    return len(clients) - len(waiting)


def _get(port: int, path: str, host: str | None = "127.0.0.1") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _close_all(clients: list[socket.socket]) -> None:
    for sock in clients:
        sock.close()


def test_a_slow_client_is_cut_after_the_read_timeout(application: Application) -> None:
    clients = _connect_partial(application.port, 3)
    # A client trickling its head a byte at a time gains nothing: the deadline is for the whole head.
    trickler = socket.create_connection(("127.0.0.1", application.port), timeout=30)
    started = time.monotonic()
    cut = False
    for byte in PARTIAL_HEAD * 20:
        try:
            trickler.sendall(bytes([byte]))
        except OSError:
            cut = True
            break
        trickler.settimeout(1.0)
        try:
            if trickler.recv(1024) == b"":
                cut = True
                break
        except TimeoutError:
            pass
        if time.monotonic() - started > CUT_WITHIN_SECONDS:
            break
    trickler.close()

    assert cut, f"a trickling client was still connected after {CUT_WITHIN_SECONDS} s"
    assert _closed_by_server(clients, CUT_WITHIN_SECONDS) == len(clients)
    _close_all(clients)
    assert _get(application.port, HEALTH_PATH)[0] == 200


def test_300_partial_connections_leave_the_application_its_descriptors_and_threads(application: Application) -> None:
    idle_threads = application.threads()
    clients = _connect_partial(application.port, 300)
    try:
        # The endpoint holds at most MAX_CONNECTIONS of them, one thread each; the others were refused.
        assert application.threads() <= idle_threads + MAX_CONNECTIONS + 2
        assert application.descriptors() <= 256 - 64
        assert application.can_open_a_file() == "opened"
        assert _closed_by_server(clients, CUT_WITHIN_SECONDS) == len(clients)
    finally:
        _close_all(clients)
    # Cut, refused or gone: the endpoint is back to its serving thread, and answers.
    deadline = time.monotonic() + CUT_WITHIN_SECONDS
    while application.threads() > idle_threads and time.monotonic() < deadline:
        time.sleep(0.2)
    assert application.threads() <= idle_threads
    assert _get(application.port, HEALTH_PATH)[0] == 200


def test_clients_that_vanish_print_no_traceback(application: Application) -> None:
    port = application.port
    # Gone mid-head, politely and with a reset.
    for polite in (True, False):
        clients = _connect_partial(port, 20)
        for sock in clients:
            if not polite:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
    # Gone before reading the answer: the endpoint writes to a reset connection.
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(f"GET {METRICS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    # Cut by the endpoint, then gone.
    clients = _connect_partial(port, 10)
    _closed_by_server(clients, CUT_WITHIN_SECONDS)
    _close_all(clients)
    assert _get(port, HEALTH_PATH)[0] == 200

    stderr = application.stop()

    assert "Traceback" not in stderr
    assert "Error" not in stderr
    assert "Exception occurred" not in stderr


@pytest.mark.parametrize("host", ["evil.com", "evil.com:8503", "127.0.0.1.evil.com", None])
def test_a_foreign_host_is_refused_on_loopback(application: Application, host: str | None) -> None:
    status, body = _get(application.port, HEALTH_PATH, host)

    assert status == 400
    assert body.endswith(b"it answers localhost, 127.0.0.1 and [::1]\n")
    assert body.count(b"\n") == 1


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8503", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8503", "LOCALHOST"]
)
def test_loopback_hosts_get_the_three_gets(application: Application, host: str) -> None:
    assert _get(application.port, HEALTH_PATH, host)[0] == 200
    assert _get(application.port, METRICS_PATH, host)[0] == 200
    assert _get(application.port, SUMMARY_PATH, host)[0] == 200


def test_bound_to_every_address_any_host_is_answered(port: int) -> None:
    app = Application(port, "0.0.0.0")
    try:
        assert _get(port, HEALTH_PATH, "metrics.internal:8503")[0] == 200
        assert _get(port, METRICS_PATH, "evil.com")[0] == 200
    finally:
        app.process.kill()
        app.process.wait(timeout=30)
