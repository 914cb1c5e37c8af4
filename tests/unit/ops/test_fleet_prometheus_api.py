"""The fleet's Prometheus client: the base URL it takes, and what a failure to reach it says."""

from __future__ import annotations

import pytest

from eddie_otel.ops.prometheus_api import PrometheusAPI, Unreachable
from tests.conftest import free_port


@pytest.mark.parametrize(
    "given",
    [
        "http://prometheus:9090",
        "http://prometheus:9090/",
        "http://prometheus:9090/api/v1",
        "http://prometheus:9090/api/v1/",
        "http://user:pw@prometheus:9090/api/v1/",
    ],
)
def test_the_api_prefix_and_trailing_slashes_are_dropped_from_the_base_url(given: str) -> None:
    assert PrometheusAPI(given).url == "http://prometheus:9090"


def test_a_base_url_under_a_path_keeps_the_path() -> None:
    assert PrometheusAPI("https://ops.example/prometheus/api/v1").url == "https://ops.example/prometheus"
    assert PrometheusAPI("https://ops.example/prometheus/").url == "https://ops.example/prometheus"


def test_nothing_listening_names_the_base_url_not_the_request() -> None:
    closed = free_port()
    api = PrometheusAPI(f"http://user:pw@127.0.0.1:{closed}/api/v1")
    with pytest.raises(Unreachable) as caught:
        api.query('sum(rate(task_split_total{job=~"eddie"}[5m]))')
    message = str(caught.value)
    assert message.startswith(f"cannot reach Prometheus at http://127.0.0.1:{closed}: ")
    assert "\n" not in message
    for unwanted in ("pw", "query", "task_split_total", "%7B", "/api/v1"):
        assert unwanted not in message
