"""Shared fixtures: a fresh eddie-otel runtime per test, free loopback ports, the Prometheus binaries."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

import eddie_otel
from eddie_otel import runtime as _runtime
from tests.support.otlp_receiver import OtlpReceiver

if TYPE_CHECKING:
    # Imported by its fixture only: grpcio loads only in the tests that use it.
    from tests.support.otlp_grpc_receiver import OtlpGrpcReceiver

# CI sets this so that a missing prometheus/promtool fails the run instead of skipping.
REQUIRE_PROMETHEUS = os.environ.get("EDDIE_OTEL_REQUIRE_PROMETHEUS", "") not in ("", "0", "false")


@pytest.fixture(autouse=True)
def _fresh_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts unconfigured, with no OTEL_*/EDDIE_OTEL_* variable from the caller's shell."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "EDDIE_OTEL_")) and name != "EDDIE_OTEL_REQUIRE_PROMETHEUS":
            monkeypatch.delenv(name)
    eddie_otel.reset()
    yield
    eddie_otel.reset()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    """A free loopback port."""
    return free_port()


@pytest.fixture
def configured() -> _runtime.Runtime:
    """eddie-otel configured with the Prometheus reader and no port of its own."""
    return eddie_otel.configure(serve=False)


def _binary(name: str, package: str = "prometheus", *aliases: str) -> str:
    path = next((found for found in map(shutil.which, (name, *aliases)) if found), None)
    if path is None:
        message = f"{name} not found: install the Debian package {package}"
        if REQUIRE_PROMETHEUS:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool; skips (or fails, in CI) when it is missing."""
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of the prometheus server; skips (or fails, in CI) when it is missing."""
    return _binary("prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path of amtool; skips (or fails, in CI) when it is missing."""
    return _binary("amtool", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    """Path of the Alertmanager server (Debian names it prometheus-alertmanager); skips or fails when missing."""
    return _binary("alertmanager", "prometheus-alertmanager", "prometheus-alertmanager")


@pytest.fixture
def metrics_port() -> int:
    """eddie-otel configured to serve its endpoint on a free port, and that port."""
    port = free_port()
    eddie_otel.configure(port=port)
    return port


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A loopback OTLP/HTTP receiver; eddie-otel's final export is flushed before it stops."""
    server = OtlpReceiver()
    yield server
    eddie_otel.shutdown()
    server.close()


@pytest.fixture
def otlp_grpc_receiver() -> Iterator[OtlpGrpcReceiver]:
    """A loopback OTLP/gRPC receiver, read as `otlp_receiver` is; eddie-otel is flushed before it stops."""
    from tests.support.otlp_grpc_receiver import OtlpGrpcReceiver

    server = OtlpGrpcReceiver()
    yield server
    eddie_otel.shutdown()
    server.close()
