"""create_app builds the application and starts no server."""

from __future__ import annotations

import httpx
import pytest

import eddie_otel
from eddie_otel.service import create_app


def test_create_app_starts_no_server(port: int) -> None:
    runtime = eddie_otel.configure(serve=False)

    create_app(runtime)

    assert runtime.server is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics/health", timeout=2)
