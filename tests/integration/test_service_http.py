"""The metrics service over real HTTP: a real uvicorn server on a loopback port, real clients."""

from __future__ import annotations

import gzip
import http.client
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import eddie_otel
from eddie_otel._version import __version__
from eddie_otel.catalogue import METRICS, Kind
from eddie_otel.service import ServiceSettings, create_app
from eddie_otel.service.events import EVENT_MODELS
from eddie_otel.service.openapi import SUMMARY
from eddie_otel.service.server import BackgroundServer

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"  # then the name escaping used


def _names() -> set[str]:
    names = set()
    for metric in METRICS:
        names.add(metric.prometheus_name)
        if metric.kind is Kind.HISTOGRAM:
            names.update(metric.prometheus_name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


EDDIE_NAMES = _names()


def eddie_lines(text: str) -> list[str]:
    """The lines of a text exposition that belong to catalogue metrics, in order."""
    kept = []
    for line in text.splitlines():
        name = line.split()[2] if line.startswith("# ") else re.split(r"[{ ]", line, maxsplit=1)[0]
        if name in EDDIE_NAMES:
            kept.append(line)
    return kept


@pytest.fixture
def service(port: int) -> Iterator[httpx.Client]:
    """A client of the service (configured from the environment) served by uvicorn on a free loopback port."""
    with (
        BackgroundServer(create_app(), "127.0.0.1", port) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


def test_health(service: httpx.Client) -> None:
    response = service.get("/metrics/health")

    assert response.status_code == 200
    body = response.json()
    assert body.keys() == {"status", "version", "service", "uptime_seconds"}
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["service"] == "eddie"
    assert isinstance(body["uptime_seconds"], float)
    assert body["uptime_seconds"] >= 0


def test_events_of_every_type_reach_the_exposition(service: httpx.Client) -> None:
    posts = [
        ("task_split", {"agent": "a1", "chunks": 3, "depth": 1, "task_id": "t-1"}),
        ("task_split", {"agent": "a1", "chunks": 2, "depth": 4}),
        ("timeout", {"agent": "a1", "stage": "codegen"}),
        ("chunk_executed", {"agent": "a2", "duration_seconds": 0.2}),
        ("docker_allocated", {"container": "c1", "cpu_millicores": 500, "memory_bytes": 536870912}),
        (
            "docker_allocated",
            {"container": "c1", "cpu_millicores": 750, "memory_bytes": 536870912, "adjustment": "cpu_up"},
        ),
        ("task_completed", {"stage": "codegen", "duration_seconds": 1.5, "success": True, "agent": "a2"}),
        ("task_completed", {"stage": "codegen", "duration_seconds": 61, "success": False, "reason": "timeout"}),
        ("merge", {"chunks_combined": 3, "duplicates_removed": 1}),
    ]
    answers = []
    for type_name, body in posts:
        response = service.post(f"/events/{type_name}", json=body)
        answers.append((response.status_code, response.json()))
    refused = [{"accepted": 1, "refused_splits": 1 if body.get("depth") == 4 else 0} for _, body in posts]
    assert answers == [(202, answer) for answer in refused]

    text = service.get("/metrics/prometheus").text
    lines = set(eddie_lines(text))
    for expected in [
        'task_split_total{agent="a1"} 1.0',
        'task_split_chunks_total{agent="a1"} 3.0',
        'fallback_depth_exceeded_total{agent="a1"} 1.0',
        'timeout_events_total{agent="a1",reason="timeout",stage="codegen"} 1.0',
        'timeout_events_total{agent="unknown",reason="timeout",stage="codegen"} 1.0',
        'chunk_execution_seconds_count{agent="a2"} 1.0',
        'chunk_execution_seconds_sum{agent="a2"} 0.2',
        'agent_tasks_executed_total{agent="a2"} 2.0',
        'docker_container_cpu_limit{container="c1"} 750.0',
        'docker_container_memory_limit_bytes{container="c1"} 5.36870912e+08',
        'docker_elastic_adjustment_total{container="c1",type="cpu_up"} 1.0',
        'task_success_total{stage="codegen"} 1.0',
        'task_failure_total{reason="timeout",stage="codegen"} 1.0',
        'task_execution_seconds_bucket{le="60.0",stage="codegen"} 1.0',
        'task_execution_seconds_bucket{le="120.0",stage="codegen"} 2.0',
        'task_execution_seconds_sum{stage="codegen"} 62.5',
        "merge_deduplication_total 1.0",
        "merge_chunks_combined_total 3.0",
    ]:
        assert expected in lines, expected
    assert 'eddie_otel_events_total{outcome="accepted",type="task_split"} 2.0' in text
    assert 'eddie_otel_events_total{outcome="accepted",type="merge"} 1.0' in text


def test_batch_records_every_event(service: httpx.Client) -> None:
    events = [
        {"type": "task_split", "agent": "a1", "chunks": 4, "depth": 0},
        {"type": "merge", "chunks_combined": 4, "duplicates_removed": 0},
        {"type": "merge", "chunks_combined": 6, "duplicates_removed": 2},
    ]

    response = service.post("/events", json={"events": events})

    assert (response.status_code, response.json()) == (202, {"accepted": 3, "refused_splits": 0})
    totals = service.get("/metrics/summary").json()["totals"]
    assert (totals["task_split"], totals["task_split_chunks"]) == (1, 4)
    assert (totals["merge_chunks_combined"], totals["merge_deduplication"]) == (10, 2)
    text = service.get("/metrics/prometheus").text
    assert 'eddie_otel_events_total{outcome="accepted",type="merge"} 2.0' in text
    assert 'eddie_otel_events_total{outcome="accepted",type="task_split"} 1.0' in text


def test_splits_past_the_maximum_depth_are_accepted_and_counted_as_refused(service: httpx.Client) -> None:
    events = [
        {"type": "task_split", "agent": "a1", "chunks": 2, "depth": 3},
        {"type": "task_split", "agent": "a1", "chunks": 2, "depth": 4},
        {"type": "task_split", "agent": "a1", "chunks": 2, "depth": 9},
    ]

    batch = service.post("/events", json={"events": events})
    single = service.post("/events/task_split", json={"agent": "a1", "chunks": 2, "depth": 5})

    assert (batch.status_code, batch.json()) == (202, {"accepted": 3, "refused_splits": 2})
    assert (single.status_code, single.json()) == (202, {"accepted": 1, "refused_splits": 1})
    text = service.get("/metrics/prometheus").text
    assert 'fallback_depth_exceeded_total{agent="a1"} 3.0' in text
    assert 'task_split_total{agent="a1"} 1.0' in text


def test_empty_batch_accepts_nothing(service: httpx.Client) -> None:
    response = service.post("/events", json={"events": []})

    assert (response.status_code, response.json()) == (202, {"accepted": 0, "refused_splits": 0})


def timeless(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A summary without what moves with the clock: `generated_at`, the windows' covered time and rates."""
    rest = {key: value for key, value in summary.items() if key != "generated_at"}
    rest["windows"] = {name: window["counts"] for name, window in summary["windows"].items()}
    return rest


def test_summary_is_the_same_dict_as_the_python_api(service: httpx.Client) -> None:
    empty = service.get("/metrics/summary")
    assert empty.status_code == 200
    assert timeless(empty.json()) == timeless(eddie_otel.summary())
    assert all(value is None for value in (item["value"] for item in empty.json()["indicators"]))

    for seconds in (1.0, 2.0, 3.0):
        service.post(
            "/events/task_completed",
            json={"stage": "review", "duration_seconds": seconds, "success": True, "agent": "a1"},
        )
    service.post("/events/chunk_executed", json={"agent": "a2", "duration_seconds": 0.5})

    body = service.get("/metrics/summary").json()
    assert timeless(body) == timeless(eddie_otel.summary())
    SUMMARY.validate_python(body, strict=True)  # the schema the OpenAPI document gives is the one served
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["generated_at"])
    for name, seconds in (("5m", 300), ("1h", 3600)):
        window = body["windows"][name]
        # The service is seconds old: each window covers that much, and its rates are per second of it.
        assert 0 < window["covered_seconds"] < 60 < seconds == window["seconds"]
        assert window["counts"]["task_success"] == 3
        assert window["rates"]["task_success"] == pytest.approx(3 / max(window["covered_seconds"], 1.0))
    assert body["latency"] == {"review": {"samples": 3, "p50": 2.0, "p95": 3.0, "p99": 3.0}}
    agents = body["agents"]
    assert {name: (a["active"], a["executed"], a["capacity"], a["saturation"]) for name, a in agents.items()} == {
        "a1": (0, 3, None, None),
        "a2": (0, 1, None, None),
    }
    # Last seen: when the events were recorded (Unix seconds), on the recorder's 10-second clock.
    assert all(abs(a["last_seen"] - time.time()) < 60 for a in agents.values())
    indicators = {item["name"]: item for item in body["indicators"]}
    assert indicators["success_rate"] == {
        "name": "success_rate",
        "window": "1h",
        "value": 1.0,
        "target": {"op": ">=", "value": 0.95},
        "ok": True,
    }
    assert indicators["agent_balance_ratio"]["value"] == 3.0


def test_prometheus_text_format_by_default(service: httpx.Client) -> None:
    service.post("/events/merge", json={"chunks_combined": 5, "duplicates_removed": 1})
    service.post("/events/task_completed", json={"stage": "test", "duration_seconds": 0.75, "success": True})

    response = service.get("/metrics/prometheus")

    assert response.status_code == 200
    assert response.headers["content-type"] == TEXT_FORMAT
    assert "merge_chunks_combined_total 5.0" in response.text.splitlines()
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["merge_chunks_combined"].type == "counter"
    assert families["task_execution_seconds"].type == "histogram"
    assert 'task_execution_seconds_bucket{le="1.0",stage="test"} 1.0' in response.text.splitlines()


def test_openmetrics_when_asked_for(service: httpx.Client) -> None:
    service.post("/events/merge", json={"chunks_combined": 5, "duplicates_removed": 1})

    response = service.get("/metrics/prometheus", headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(OPENMETRICS)
    lines = response.text.splitlines()
    assert lines[-1] == "# EOF"
    assert "# TYPE merge_chunks_combined counter" in lines
    assert "merge_chunks_combined_total 5.0" in lines


def _raw_get(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A GET of /metrics/prometheus with no client-side decoding of the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics/prometheus", headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_gzip_when_accepted(service: httpx.Client, port: int) -> None:
    service.post("/events/task_split", json={"agent": "a1", "chunks": 2, "depth": 0})
    _, plain_headers, plain = _raw_get(port, {})

    status, headers, body = _raw_get(port, {"Accept-Encoding": "gzip, deflate"})

    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in headers["vary"]
    assert int(headers["content-length"]) == len(body)
    unzipped = gzip.decompress(body).decode()
    assert eddie_lines(unzipped) == eddie_lines(plain.decode())
    assert 'task_split_total{agent="a1"} 1.0' in unzipped.splitlines()
    assert "content-encoding" not in plain_headers


@pytest.mark.parametrize("accept_encoding", ["gzip;q=0", "identity", "br", ""])
def test_no_gzip_when_not_accepted(service: httpx.Client, port: int, accept_encoding: str) -> None:
    service.post("/events/merge", json={"chunks_combined": 2, "duplicates_removed": 0})

    status, headers, body = _raw_get(port, {"Accept-Encoding": accept_encoding})

    assert status == 200
    assert "content-encoding" not in headers
    assert "merge_chunks_combined_total 2.0" in body.decode().splitlines()


@pytest.mark.parametrize("path", ["/metrics/prometheus/", "/metrics/summary/", "/metrics/health/"])
def test_trailing_slash_is_not_redirected(service: httpx.Client, path: str) -> None:
    response = service.get(path)

    assert response.status_code == 404
    assert "location" not in response.headers


def _request_counts(text: str) -> dict[tuple[str, str, str], float]:
    """http_server_request_duration_seconds_count per (method, route, status)."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    duration = families["http_server_request_duration_seconds"]
    assert duration.type == "histogram"
    return {
        (
            sample.labels["http_request_method"],
            sample.labels.get("http_route", ""),
            sample.labels["http_response_status_code"],
        ): sample.value
        for sample in duration.samples
        if sample.name.endswith("_count")
    }


def test_server_metrics_of_the_service_itself(service: httpx.Client) -> None:
    assert service.get("/metrics/summary").status_code == 200
    assert service.get("/metrics/nope").status_code == 404
    assert service.post("/events/merge", json={"chunks_combined": 1, "duplicates_removed": 0}).status_code == 202
    service.get("/metrics/prometheus")

    text = service.get("/metrics/prometheus").text

    # The webhooks are counted by eddie_otel_events_total, not by the HTTP middleware.
    assert _request_counts(text) == {("GET", "/metrics/summary", "200"): 1.0, ("GET", "", "404"): 1.0}
    lines = text.splitlines()
    assert 'eddie_otel_events_total{outcome="accepted",type="merge"} 1.0' in lines
    assert 'http_server_active_requests{http_request_method="GET",url_scheme="http"} 0.0' in lines
    assert "# TYPE http_server_response_body_size_bytes histogram" in lines
    assert "/metrics/prometheus" not in text  # the scrape endpoint is excluded


def test_server_metrics_labels_are_bounded(service: httpx.Client) -> None:
    for index in range(5):
        service.get("/metrics/health", headers={"Host": f"client-{index}.example"})
    service.request("BREW", "/metrics/health")
    service.get(f"/no/such/path/{'x' * 50}")

    text = service.get("/metrics/prometheus").text

    assert _request_counts(text) == {
        ("GET", "/metrics/health", "400"): 5.0,  # foreign Hosts: refused, and never a label
        ("_OTHER", "/metrics/health", "405"): 1.0,
        ("GET", "", "404"): 1.0,
    }
    assert "client-" not in text
    assert "x" * 50 not in text


def test_the_standard_variable_chooses_what_else_is_excluded(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    # Another list replaces the default one: here the webhooks are measured and /metrics/health is not.
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "metrics/health")
    with BackgroundServer(create_app(), "127.0.0.1", port) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/events/merge", json={"chunks_combined": 1, "duplicates_removed": 0}).status_code == 202
        assert client.post("/events/nope", json={}).status_code == 404
        assert client.get("/metrics/health").status_code == 200
        text = client.get("/metrics/prometheus").text

    assert _request_counts(text) == {("POST", "/events/merge", "202"): 1.0, ("POST", "/events/{type}", "404"): 1.0}
    lines = text.splitlines()
    assert "# TYPE http_server_request_body_size_bytes histogram" in lines
    assert "merge_chunks_combined_total 1.0" in lines


def test_openapi_describes_every_endpoint_and_event_model(service: httpx.Client) -> None:
    document = service.get("/openapi.json").json()

    paths = document["paths"]
    assert set(paths) == {
        "/metrics/prometheus",
        "/metrics/summary",
        "/metrics/health",
        "/events",
        *(f"/events/{name}" for name in EVENT_MODELS),
    }
    schemas = document["components"]["schemas"]
    for name, model in EVENT_MODELS.items():
        operation = paths[f"/events/{name}"]["post"]
        body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body_schema == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields)
        assert {"202", "401", "413", "415", "422"} <= set(operation["responses"])
    batch = paths["/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch == {"$ref": "#/components/schemas/EventBatch"}
    assert schemas["TaskSplitEvent"]["properties"]["chunks"]["minimum"] == 1
    assert schemas["TaskSplitEvent"]["properties"]["agent"]["maxLength"] == 64
    for path in ("/metrics/prometheus", "/metrics/summary", "/metrics/health"):
        assert "get" in paths[path]
    assert paths["/metrics/summary"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Summary"
    }


def test_bearer_token_lets_events_in(port: int) -> None:
    app = create_app(service=ServiceSettings.load({}, webhook_token="s3cret"))
    with BackgroundServer(app, "127.0.0.1", port) as server, httpx.Client(base_url=server.url) as client:
        response = client.post(
            "/events/merge",
            json={"chunks_combined": 1, "duplicates_removed": 0},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert (response.status_code, response.json()) == (202, {"accepted": 1, "refused_splits": 0})
        # Reading needs no token: Prometheus scrapes without one.
        assert client.get("/metrics/summary").json()["totals"]["merge_chunks_combined"] == 1


def test_events_go_to_the_runtime_the_app_was_built_with(port: int) -> None:
    built_with = eddie_otel.configure(serve=False)
    app = create_app(built_with)
    eddie_otel.configure(serve=False, service_name="another")  # replaces the process-wide runtime

    with BackgroundServer(app, "127.0.0.1", port) as server, httpx.Client(base_url=server.url) as client:
        response = client.post("/events/merge", json={"chunks_combined": 4, "duplicates_removed": 1})
        assert (response.status_code, response.json()) == (202, {"accepted": 1, "refused_splits": 0})
        assert client.get("/metrics/summary").json()["totals"]["merge_chunks_combined"] == 4


class TestCors:
    """CORS headers only for the origins listed in EDDIE_OTEL_CORS_ORIGINS."""

    def test_listed_origin(self, monkeypatch: pytest.MonkeyPatch, port: int) -> None:
        monkeypatch.setenv("EDDIE_OTEL_CORS_ORIGINS", "https://dash.example.com, http://localhost:3000")
        with BackgroundServer(create_app(), "127.0.0.1", port) as server, httpx.Client(base_url=server.url) as client:
            allowed = client.get("/metrics/summary", headers={"Origin": "https://dash.example.com"})
            other = client.get("/metrics/summary", headers={"Origin": "https://evil.example.com"})
            preflight = client.options(
                "/events/merge",
                headers={
                    "Origin": "http://localhost:3000",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            refused = client.options(
                "/events/merge",
                headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
            )

        assert allowed.headers["access-control-allow-origin"] == "https://dash.example.com"
        assert "access-control-allow-origin" not in other.headers
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

    def test_no_origin_listed(self, service: httpx.Client) -> None:
        response = service.get("/metrics/summary", headers={"Origin": "https://dash.example.com"})
        preflight = service.options(
            "/events/merge",
            headers={"Origin": "https://dash.example.com", "Access-Control-Request-Method": "POST"},
        )

        assert response.status_code == 200
        assert not any(name.startswith("access-control-") for name in response.headers)
        assert preflight.status_code == 405
        assert not any(name.startswith("access-control-") for name in preflight.headers)


def test_sdk_disabled_still_answers(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with BackgroundServer(create_app(), "127.0.0.1", port) as server, httpx.Client(base_url=server.url) as client:
        health = client.get("/metrics/health")
        posted = client.post("/events/merge", json={"chunks_combined": 1, "duplicates_removed": 0})
        metrics = client.get("/metrics/prometheus")

    assert health.json()["status"] == "ok"
    assert posted.status_code == 202
    assert metrics.status_code == 200
    assert metrics.text == ""
