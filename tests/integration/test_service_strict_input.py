"""The smaller edges of the HTTP API, over real HTTP: repeated keys, HEAD, bad query values, charsets, -0.0."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import eddie_otel
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(port: int) -> Iterator[httpx.Client]:
    runtime = eddie_otel.configure(serve=False, port=0)
    with (
        BackgroundServer(create_app(runtime), "127.0.0.1", port) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def totals(client: httpx.Client) -> dict[str, object]:
    answer = client.get("/metrics/summary").json()["totals"]
    assert isinstance(answer, dict)
    return answer


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/events", b'{"events": [{"type": "merge", "type": "timeout", "agent": "a", "stage": "s"}]}'),
        ("/events/merge", b'{"chunks_combined": 2, "chunks_combined": 3, "duplicates_removed": 0}'),
        ("/events", b'{"events": [], "events": [{"type": "merge", "chunks_combined": 1, "duplicates_removed": 0}]}'),
    ],
)
def test_a_repeated_key_is_refused_naming_it(client: httpx.Client, path: str, body: bytes) -> None:
    before = totals(client)
    answer = client.post(path, content=body, headers=JSON)
    assert answer.status_code == 422
    assert set(answer.json()) == {"detail", "errors"}
    assert "duplicate key" in answer.json()["detail"]
    assert answer.json()["errors"][0]["field"] == "body"
    assert totals(client) == before


@pytest.mark.parametrize("path", ["/metrics/health", "/metrics/summary", "/metrics/prometheus", "/"])
def test_head_answers_like_get_without_a_body(client: httpx.Client, path: str) -> None:
    answer = client.head(path)
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-type"] == client.get(path).headers["content-type"]


def test_head_on_a_post_route_is_405(client: httpx.Client) -> None:
    assert client.head("/events").status_code == 405


def test_a_bad_query_value_gets_the_documented_refusal(client: httpx.Client) -> None:
    answer = client.get("/metrics/summary", params={"scope": "galaxy"})
    assert answer.status_code == 422
    problem = answer.json()
    assert set(problem) == {"detail", "errors"}
    assert problem["errors"][0]["field"] == "scope"
    assert problem["detail"].startswith("scope: ")


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "utf-16"])
def test_a_charset_other_than_utf8_is_415_naming_it(client: httpx.Client, charset: str) -> None:
    body = '{"agent": "a1", "stage": "café"}'.encode("latin-1")
    answer = client.post(
        "/events/timeout", content=body, headers={"Content-Type": f"application/json; charset={charset}"}
    )
    assert answer.status_code == 415
    assert charset.lower() in answer.json()["detail"]


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"', "utf8"])
def test_utf8_charset_is_accepted(client: httpx.Client, charset: str) -> None:
    answer = client.post(
        "/events/timeout",
        content=b'{"agent": "a1", "stage": "s"}',
        headers={"Content-Type": f"application/json; charset={charset}"},
    )
    assert answer.status_code == 202


def test_negative_zero_duration_is_recorded_as_zero(client: httpx.Client) -> None:
    answer = client.post(
        "/events/task_completed", content=b'{"stage": "s", "duration_seconds": -0.0, "success": true}', headers=JSON
    )
    assert answer.status_code == 202
    exposition = client.get("/metrics/prometheus").text
    assert "-0.0" not in exposition
    sums = [line for line in exposition.splitlines() if line.startswith("task_execution_seconds_sum")]
    assert sums
    assert all(line.endswith(" 0.0") for line in sums)


def test_task_completed_without_success_is_refused_naming_it(client: httpx.Client) -> None:
    before = totals(client)
    answer = client.post("/events/task_completed", json={"stage": "s", "duration_seconds": 1.0})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"field": "success", "message": "Field required"}]
    batch = client.post("/events", json={"events": [{"type": "task_completed", "stage": "s", "duration_seconds": 1}]})
    assert batch.status_code == 422
    assert batch.json()["errors"][0]["field"] == "events[0].success"
    assert totals(client) == before
