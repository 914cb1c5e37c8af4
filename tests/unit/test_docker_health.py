"""/metrics/health says what the Docker watcher knows: in the agent endpoint's body and in the service's."""

from __future__ import annotations

import time

import httpx
import pytest

import eddie_otel
from eddie_otel.docker import DockerWatcher
from eddie_otel.endpoint import health_body
from eddie_otel.service import create_app
from tests.support.docker_fake import FakeEngine


def _degraded(watcher: DockerWatcher) -> None:
    deadline = time.monotonic() + 5
    while (watcher.health() or {}).get("docker", "").startswith("engine unreachable") is False:
        if time.monotonic() > deadline:
            pytest.fail("the watcher did not find the engine unreachable")
        time.sleep(0.01)


async def test_the_service_health_carries_the_docker_status_only_when_degraded() -> None:
    runtime = eddie_otel.configure(serve=False)
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    engine = FakeEngine()
    engine.down = "connection refused"
    watcher = DockerWatcher(engine=engine.connect, first_retry=0.01, last_retry=0.05).start()
    try:
        _degraded(watcher)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            body = (await client.get("/metrics/health")).json()
        assert body["status"] == "degraded"
        assert body["docker"] == "engine unreachable: connection refused"
        engine.come_back()
        assert watcher.wait_ready(5)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            body = (await client.get("/metrics/health")).json()
        assert body["status"] == "ok"
        assert "docker" not in body
    finally:
        watcher.stop()
    # Stopped, the watcher no longer speaks for the process.
    engine.down = "gone"
    assert health_body("eddie", 0)["status"] == "ok"
