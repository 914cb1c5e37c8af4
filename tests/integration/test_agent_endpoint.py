"""The endpoint configure() starts in an agent process answers the seed's three GETs like the service."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

import eddie_otel
from eddie_otel._version import __version__
from eddie_otel.endpoint import HEALTH_PATH, METRICS_PATH, SUMMARY_PATH
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from tests.support.helpers import record_every_metric


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def _shape(value: Any) -> Any:
    """The keys of `value`, recursively (lists by their first element): what two answers must share."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_the_agent_endpoint_answers_metrics_health_and_summary(port: int) -> None:
    runtime = eddie_otel.configure(port=port, service_name="agent-7")
    record_every_metric()
    base = f"http://127.0.0.1:{port}"

    status, kind, body = _get(base + METRICS_PATH)
    assert status == 200
    assert kind.startswith("text/plain")
    assert b"task_split_total" in body

    status, kind, body = _get(base + HEALTH_PATH)
    assert (status, kind) == (200, "application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["version"] == __version__
    assert health["service"] == "agent-7"
    assert isinstance(health["uptime_seconds"], float)

    status, kind, body = _get(base + SUMMARY_PATH)
    assert (status, kind) == (200, "application/json")
    summary = json.loads(body)
    # record_every_metric splits twice: a task of its own, and the one its fallback rescues.
    assert summary["totals"]["task_split"] == 2

    with BackgroundServer(create_app(runtime)) as service:
        assert _shape(health) == _shape(json.loads(_get(service.url + HEALTH_PATH)[2]))
        assert _shape(summary) == _shape(json.loads(_get(service.url + SUMMARY_PATH)[2]))


def test_other_paths_are_404_naming_the_three(port: int) -> None:
    eddie_otel.configure(port=port)

    with pytest.raises(urllib.error.HTTPError) as raised:
        _get(f"http://127.0.0.1:{port}/metrics")

    assert raised.value.code == 404
    message = raised.value.read().decode()
    assert all(path in message for path in (METRICS_PATH, SUMMARY_PATH, HEALTH_PATH))
