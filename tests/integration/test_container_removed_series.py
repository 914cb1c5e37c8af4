"""A container_removed webhook drops the container's series from the exposition, over real HTTP."""

from __future__ import annotations

import httpx

from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer


def test_container_removed_drops_every_series_of_the_container() -> None:
    with BackgroundServer(create_app()) as server, httpx.Client(base_url=server.url) as client:
        for container in ("gone-1", "kept-1"):
            allocated = {"container": container, "cpu_millicores": 500, "memory_bytes": 1024, "adjustment": "cpu_up"}
            assert client.post("/events/docker_allocated", json=allocated).status_code == 202
        assert 'container="gone-1"' in client.get("/metrics/prometheus").text

        removed = client.post("/events/container_removed", json={"container": "gone-1"})
        text = client.get("/metrics/prometheus").text

    assert (removed.status_code, removed.json()) == (202, {"accepted": 1, "refused_splits": 0})
    assert 'container="gone-1"' not in text
    assert 'docker_container_cpu_limit{container="kept-1"} 500.0' in text
    assert 'docker_elastic_adjustment_total{container="kept-1",type="cpu_up"} 1.0' in text
