"""The worst requests one client can send, over real HTTP to uvicorn on a loopback port.

Each answer is small and quick whatever the body, the service keeps answering its health
check while it refuses them, and a refused body records nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

import eddie_otel
from eddie_otel.service import create_app
from eddie_otel.service.events import MAX_BATCH_EVENTS, MAX_ERRORS
from eddie_otel.service.server import BackgroundServer
from tests.support.service_attack import worst_batch

JSON = {"Content-Type": "application/json"}
# Far above what the answers measure (a few hundred bytes, a fraction of a second): a bound, not a benchmark.
SMALL_ANSWER_BYTES = 8 * 1024
GENEROUS_SECONDS = 5.0


@pytest.fixture
def client(port: int) -> Iterator[httpx.Client]:
    runtime = eddie_otel.configure(serve=False, port=0)
    with (
        BackgroundServer(create_app(runtime), "127.0.0.1", port) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        yield client


def recorded(client: httpx.Client) -> dict[str, object]:
    """The totals of the summary: what the service has recorded."""
    totals = client.get("/metrics/summary").json()["totals"]
    assert isinstance(totals, dict)
    return totals


def test_a_one_megabyte_batch_of_empty_events_gets_a_small_answer_naming_the_cap(client: httpx.Client) -> None:
    body = worst_batch()
    assert len(body) > 1_000_000
    before = recorded(client)

    answer = client.post("/events", content=body, headers=JSON)

    assert answer.status_code == 422
    assert len(answer.content) < SMALL_ANSWER_BYTES
    problem = answer.json()
    assert set(problem) == {"detail", "errors"}
    assert problem["errors"] == [
        {"field": "events", "message": f"the batch has 340000 events; the limit is {MAX_BATCH_EVENTS} per batch"}
    ]
    assert problem["detail"] == f"events: the batch has 340000 events; the limit is {MAX_BATCH_EVENTS} per batch"
    assert recorded(client) == before


def test_many_bad_events_list_the_first_errors_and_count_them_all(client: httpx.Client) -> None:
    before = recorded(client)

    answer = client.post("/events", content=worst_batch(MAX_BATCH_EVENTS), headers=JSON)

    assert answer.status_code == 422
    assert len(answer.content) < SMALL_ANSWER_BYTES
    problem = answer.json()
    assert set(problem) == {"detail", "errors"}
    assert len(problem["errors"]) == MAX_ERRORS
    assert [error["field"] for error in problem["errors"]] == [f"events[{i}].type" for i in range(MAX_ERRORS)]
    assert problem["detail"].endswith(f"(the first {MAX_ERRORS} of {MAX_BATCH_EVENTS} errors)")
    assert recorded(client) == before


def test_a_body_of_unknown_fields_is_one_error_not_one_per_key(client: httpx.Client) -> None:
    fields = ",".join(f'"k{i}": 0' for i in range(80_000))
    body = ('{"chunks_combined": 1, "duplicates_removed": 0, ' + fields + "}").encode()

    answer = client.post("/events/merge", content=body, headers=JSON)

    assert answer.status_code == 422
    assert len(answer.content) < SMALL_ANSWER_BYTES
    assert answer.json()["errors"][0]["field"] == "body"
    assert "unknown fields" in answer.json()["detail"]


def test_a_huge_field_name_or_type_is_not_echoed_at_length(client: httpx.Client) -> None:
    long = "x" * 500_000
    for body in (
        json.dumps({"events": [{"type": long}]}),
        json.dumps({"events": [{"type": "merge", "chunks_combined": 1, "duplicates_removed": 0, long: 1}]}),
    ):
        answer = client.post("/events", content=body, headers=JSON)
        assert answer.status_code == 422
        assert len(answer.content) < SMALL_ANSWER_BYTES


def test_health_answers_while_four_worst_requests_are_in_flight(client: httpx.Client) -> None:
    body = worst_batch()
    before = recorded(client)
    statuses: list[int] = []
    health: list[tuple[int, float]] = []
    base = str(client.base_url)

    def attack() -> None:
        statuses.append(httpx.post(base + "/events", content=body, headers=JSON, timeout=60).status_code)

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    with httpx.Client(base_url=base, timeout=60) as poller:
        while any(thread.is_alive() for thread in attackers) or not health:
            started = time.monotonic()
            status = poller.get("/metrics/health").status_code
            health.append((status, time.monotonic() - started))
    for thread in attackers:
        thread.join()

    assert statuses == [422] * 4
    assert all(status == 200 for status, _ in health)
    slowest = max(seconds for _, seconds in health)
    assert slowest < GENEROUS_SECONDS, f"health took {slowest:.2f} s"
    assert recorded(client) == before
