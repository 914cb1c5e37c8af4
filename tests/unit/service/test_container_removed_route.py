"""POST /events/container_removed makes the recorder forget the container, and is counted as accepted."""

from __future__ import annotations

import httpx

import eddie_otel
from eddie_otel.recording import Recorder
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer


class ForgettingRecorder(Recorder):
    """A recorder that remembers which containers it was told to forget."""

    forgotten: list[str]

    def forget(self, label: str, value: str) -> None:
        assert label == "container"
        self.forgotten.append(value)


def test_container_removed_forgets_the_container_once_per_event() -> None:
    runtime = eddie_otel.configure(serve=False)
    recorder = ForgettingRecorder(runtime.settings, runtime.telemetry, runtime.history)
    recorder.forgotten = []
    runtime.recorder = recorder

    with BackgroundServer(create_app(runtime)) as server, httpx.Client(base_url=server.url) as client:
        single = client.post("/events/container_removed", json={"container": "agent-1"})
        batch = client.post("/events", json={"events": [{"type": "container_removed", "container": "agent-2"}]})
        refused = client.post("/events/container_removed", json={"container": "bad label"})
        text = client.get("/metrics/prometheus").text

    assert (single.status_code, single.json()) == (202, {"accepted": 1, "refused_splits": 0})
    assert (batch.status_code, batch.json()) == (202, {"accepted": 1, "refused_splits": 0})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "container"
    assert recorder.forgotten == ["agent-1", "agent-2"]
    assert 'eddie_otel_events_total{outcome="accepted",type="container_removed"} 2.0' in text
    assert 'eddie_otel_events_total{outcome="rejected",type="container_removed"} 1.0' in text
