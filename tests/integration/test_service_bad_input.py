"""Bad input to the event webhooks, over real HTTP: a 4xx naming the field, and nothing recorded.

The service runs with a webhook token and a 1 KiB body limit. Each case first records
one valid event of every type, then sends one bad request and checks the status, the
field named in the answer, that the catalogue metrics of the exposition are unchanged
byte for byte, and that eddie_otel_events_total counted the rejection.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from eddie_otel import runtime as _rt
from eddie_otel.catalogue import METRICS, Kind
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer

TOKEN = "s3cret-token"
LIMIT = 1024
# The deeply nested bodies need more room: 100 000 levels exhaust any recursive parser.
NESTED_LIMIT = 256 * 1024
GOOD = {
    "task_split": {"agent": "a1", "chunks": 3, "depth": 1},
    "timeout": {"agent": "a1", "stage": "codegen"},
    "chunk_executed": {"agent": "a1", "duration_seconds": 0.25},
    "docker_allocated": {"container": "c1", "cpu_millicores": 500, "memory_bytes": 1048576},
    "task_completed": {"stage": "codegen", "duration_seconds": 1.5, "success": True},
    "merge": {"chunks_combined": 3, "duplicates_removed": 1},
}
EDDIE_NAMES = {metric.prometheus_name for metric in METRICS} | {
    metric.prometheus_name + suffix
    for metric in METRICS
    if metric.kind is Kind.HISTOGRAM
    for suffix in ("_bucket", "_count", "_sum")
}


def eddie_lines(exposition: bytes) -> bytes:
    """The lines of a text exposition that belong to catalogue metrics, byte for byte."""
    kept = []
    for line in exposition.split(b"\n"):
        text = line.decode()
        name = text.split()[2] if text.startswith("# ") else re.split(r"[{ ]", text, maxsplit=1)[0]
        if name in EDDIE_NAMES:
            kept.append(line)
    return b"\n".join(kept)


def body(type_name: str, **changes: object) -> bytes:
    """The good event of `type_name` as JSON, with `changes` applied (a value of ... removes the field)."""
    event = {**GOOD[type_name], **changes}
    return json.dumps({key: value for key, value in event.items() if value is not ...}).encode()


def batch(*events: dict[str, object]) -> bytes:
    """A batch body."""
    return json.dumps({"events": list(events)}).encode()


def typed(type_name: str, **changes: object) -> dict[str, object]:
    """A batch element: the good event of `type_name` with its type and `changes`."""
    return {"type": type_name, **GOOD[type_name], **changes}


@dataclass(frozen=True)
class Case:
    """One bad request and what it must get."""

    path: str
    content: bytes
    status: int
    field: str
    rejected: dict[str, int]
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    limit: int = LIMIT


CASES: dict[str, Case] = {
    # Wrong types: strict, nothing coerced (an integral float like 3.0 is the integer JSON Schema says it is).
    "count as a string": Case("/events/task_split", body("task_split", chunks="3"), 422, "chunks", {"task_split": 1}),
    "count as a fraction": Case("/events/task_split", body("task_split", chunks=3.5), 422, "chunks", {"task_split": 1}),
    "count as a bool": Case("/events/task_split", body("task_split", depth=True), 422, "depth", {"task_split": 1}),
    "label as a number": Case("/events/task_split", body("task_split", agent=7), 422, "agent", {"task_split": 1}),
    "label as null": Case("/events/timeout", body("timeout", stage=None), 422, "stage", {"timeout": 1}),
    "seconds as a string": Case(
        "/events/task_completed",
        body("task_completed", duration_seconds="1.5"),
        422,
        "duration_seconds",
        {"task_completed": 1},
    ),
    "bool as a number": Case(
        "/events/chunk_executed", body("chunk_executed", success=1), 422, "success", {"chunk_executed": 1}
    ),
    "bool as a string": Case(
        "/events/chunk_executed", body("chunk_executed", success="true"), 422, "success", {"chunk_executed": 1}
    ),
    # Missing and unknown fields.
    "missing field": Case("/events/task_split", body("task_split", agent=...), 422, "agent", {"task_split": 1}),
    "missing number": Case("/events/merge", body("merge", chunks_combined=...), 422, "chunks_combined", {"merge": 1}),
    "misspelt field": Case("/events/task_split", body("task_split", chunk=3), 422, "chunk", {"task_split": 1}),
    "type of another event": Case(
        "/events/task_split", body("task_split", type="merge"), 422, "type", {"task_split": 1}
    ),
    # Out of range, negative and non-finite numbers.
    "zero chunks": Case("/events/task_split", body("task_split", chunks=0), 422, "chunks", {"task_split": 1}),
    "negative depth": Case("/events/task_split", body("task_split", depth=-1), 422, "depth", {"task_split": 1}),
    "huge count": Case("/events/task_split", body("task_split", chunks=10**30), 422, "chunks", {"task_split": 1}),
    "negative duration": Case(
        "/events/chunk_executed",
        body("chunk_executed", duration_seconds=-0.5),
        422,
        "duration_seconds",
        {"chunk_executed": 1},
    ),
    "NaN duration": Case(
        "/events/chunk_executed",
        b'{"agent": "a1", "duration_seconds": NaN}',
        422,
        "duration_seconds",
        {"chunk_executed": 1},
    ),
    "infinite duration": Case(
        "/events/task_completed",
        b'{"stage": "s", "duration_seconds": Infinity, "success": true}',
        422,
        "duration_seconds",
        {"task_completed": 1},
    ),
    "overflowing duration": Case(
        "/events/task_completed",
        b'{"stage": "s", "duration_seconds": 1e400, "success": true}',
        422,
        "duration_seconds",
        {"task_completed": 1},
    ),
    "zero millicores": Case(
        "/events/docker_allocated",
        body("docker_allocated", cpu_millicores=0),
        422,
        "cpu_millicores",
        {"docker_allocated": 1},
    ),
    "negative memory": Case(
        "/events/docker_allocated",
        body("docker_allocated", memory_bytes=-1),
        422,
        "memory_bytes",
        {"docker_allocated": 1},
    ),
    "unknown adjustment": Case(
        "/events/docker_allocated",
        body("docker_allocated", adjustment="sideways"),
        422,
        "adjustment",
        {"docker_allocated": 1},
    ),
    "duplicates above chunks": Case(
        "/events/merge", body("merge", chunks_combined=2, duplicates_removed=3), 422, "duplicates_removed", {"merge": 1}
    ),
    "negative duplicates": Case(
        "/events/merge", body("merge", duplicates_removed=-1), 422, "duplicates_removed", {"merge": 1}
    ),
    "reason on a success": Case(
        "/events/task_completed", body("task_completed", reason="boom"), 422, "reason", {"task_completed": 1}
    ),
    # Label values: empty, too long, characters outside letters, digits and _.:/-.
    "empty label": Case("/events/timeout", body("timeout", agent=""), 422, "agent", {"timeout": 1}),
    "label of 65 characters": Case("/events/timeout", body("timeout", stage="s" * 65), 422, "stage", {"timeout": 1}),
    "label with a space": Case(
        "/events/timeout", body("timeout", reason="took too long"), 422, "reason", {"timeout": 1}
    ),
    "label with a quote": Case(
        "/events/chunk_executed", body("chunk_executed", agent='a"}'), 422, "agent", {"chunk_executed": 1}
    ),
    "label with a newline": Case(
        "/events/task_split", body("task_split", agent="a\nb"), 422, "agent", {"task_split": 1}
    ),
    "label not ascii": Case(
        "/events/docker_allocated",
        body("docker_allocated", container="côté"),
        422,
        "container",
        {"docker_allocated": 1},
    ),
    "task id too long": Case(
        "/events/task_split", body("task_split", task_id="t" * 300), 422, "task_id", {"task_split": 1}
    ),
    # Unknown type, broken bodies, content type, size.
    "unknown type": Case("/events/task_exploded", body("merge"), 404, "type", {"unknown": 1}),
    "invalid JSON": Case("/events/merge", b'{"chunks_combined": 1,', 422, "body", {"merge": 1}),
    "empty body": Case("/events/merge", b"", 422, "body", {"merge": 1}),
    "not UTF-8": Case("/events/timeout", b'{"agent": "\xff\xfe", "stage": "s"}', 422, "body", {"timeout": 1}),
    "deeply nested JSON": Case(
        "/events/timeout",
        b'{"agent": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        422,
        "body",
        {"timeout": 1},
        limit=NESTED_LIMIT,
    ),
    "number of 5000 digits": Case(
        "/events/merge",
        b'{"chunks_combined": ' + b"9" * 5000 + b', "duplicates_removed": 0}',
        422,
        "body",
        {"merge": 1},
        limit=NESTED_LIMIT,
    ),
    "a list, not an object": Case("/events/merge", b"[1, 2]", 422, "body", {"merge": 1}),
    "wrong content type": Case(
        "/events/merge", body("merge"), 415, "Content-Type", {"merge": 1}, {"Content-Type": "text/plain"}
    ),
    "form content type": Case(
        "/events/merge",
        b"chunks_combined=1",
        415,
        "Content-Type",
        {"merge": 1},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "oversized body": Case("/events/merge", body("merge") + b" " * LIMIT, 413, "body", {"merge": 1}),
    "oversized chunked body": Case(
        "/events/merge", body("merge") + b" " * LIMIT, 413, "body", {"merge": 1}, chunked=True
    ),
    # Batches: all or nothing, errors name the index.
    "batch with one bad event": Case(
        "/events",
        batch(typed("task_split"), typed("merge"), typed("timeout"), typed("task_split", chunks=0)),
        422,
        "events[3].chunks",
        {"task_split": 2, "merge": 1, "timeout": 1},
    ),
    "batch event without type": Case(
        "/events", batch(typed("merge"), dict(GOOD["merge"])), 422, "events[1].type", {"merge": 1, "unknown": 1}
    ),
    "batch event of unknown type": Case("/events", batch({"type": "explode"}), 422, "events[0].type", {"unknown": 1}),
    "deeply nested batch": Case(
        "/events",
        b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        422,
        "body",
        {"batch": 1},
        limit=NESTED_LIMIT,
    ),
    "batch events not a list": Case("/events", b'{"events": {"type": "merge"}}', 422, "events", {"batch": 1}),
    "batch without events": Case("/events", b'{"event": []}', 422, "events", {"batch": 1}),
    # The bearer token.
    "missing token": Case("/events/merge", body("merge"), 401, "Authorization", {"merge": 1}, {"Authorization": ""}),
    "wrong token": Case(
        "/events/merge", body("merge"), 401, "Authorization", {"merge": 1}, {"Authorization": "Bearer s3cret-tokem"}
    ),
    "wrong scheme": Case(
        "/events/merge", body("merge"), 401, "Authorization", {"merge": 1}, {"Authorization": f"Basic {TOKEN}"}
    ),
    "batch without token": Case(
        "/events", batch(typed("merge")), 401, "Authorization", {"batch": 1}, {"Authorization": ""}
    ),
}


@contextlib.contextmanager
def serving(monkeypatch: pytest.MonkeyPatch, port: int, limit: int = LIMIT) -> Iterator[httpx.Client]:
    """A client of the service with a webhook token and a body limit of `limit` bytes, on a free loopback port."""
    monkeypatch.setenv("EDDIE_OTEL_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("EDDIE_OTEL_MAX_BODY_BYTES", str(limit))
    with (
        BackgroundServer(create_app(), "127.0.0.1", port) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, port: int) -> Iterator[httpx.Client]:
    """A client of the service with a webhook token and a 1 KiB body limit."""
    with serving(monkeypatch, port) as client:
        yield client


def rejections() -> dict[str, float]:
    """eddie_otel_events_total{outcome="rejected"} per type."""
    values = _rt.current().telemetry.store.series["eddie_otel_events_total"].values()
    return {type_name: value for (type_name, outcome), value in values.items() if outcome == "rejected"}


def scrape(client: httpx.Client) -> bytes:
    """The text exposition."""
    response = client.get("/metrics/prometheus")
    assert response.status_code == 200
    return response.content


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_refused_and_changes_nothing(monkeypatch: pytest.MonkeyPatch, port: int, case: Case) -> None:
    with serving(monkeypatch, port, case.limit) as service:
        check_refused(service, case)


def check_refused(service: httpx.Client, case: Case) -> None:
    """Record good events, send the bad request of `case`, and check the answer and what changed."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for type_name in GOOD:
        assert (
            service.post(
                f"/events/{type_name}", content=body(type_name), headers={"Content-Type": "application/json", **auth}
            ).status_code
            == 202
        )
    before = eddie_lines(scrape(service))
    rejected_before = rejections()
    headers = {"Content-Type": "application/json", **auth, **case.headers}
    headers = {name: value for name, value in headers.items() if value}
    content: bytes | Iterator[bytes] = iter([case.content[:100], case.content[100:]]) if case.chunked else case.content

    response = service.post(case.path, content=content, headers=headers)

    assert response.status_code == case.status, response.text
    answer = response.json()
    assert answer["errors"][0]["field"] == case.field
    assert answer["detail"].startswith(f"{case.field}: ")
    assert eddie_lines(scrape(service)) == before
    assert before.count(b"\n") > 60  # the comparison covers every metric the good events recorded
    after = rejections()
    counted = {name: after.get(name, 0) - rejected_before.get(name, 0) for name in after}
    assert {name: count for name, count in counted.items() if count} == case.rejected
    if case.status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="eddie-otel"')


def test_matrix_is_large_enough() -> None:
    assert len(CASES) >= 25


def test_messages_say_what_is_wrong(service: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def detail(path: str, content: bytes) -> str:
        response = service.post(path, content=content, headers=auth)
        assert 400 <= response.status_code < 500
        return str(response.json()["detail"])

    assert detail("/events/task_split", body("task_split", agent="x" * 65)) == (
        "agent: agent is 65 characters long; the limit is 64"
    )
    assert detail("/events/merge", body("merge", chunks_combined=2, duplicates_removed=3)) == (
        "duplicates_removed: duplicates_removed (3) cannot exceed chunks_combined (2)"
    )
    assert detail("/events/task_split", body("task_split", chunks="3")) == "chunks: Input should be a valid integer"
    assert detail("/events/nope", b"{}") == (
        "type: unknown event type 'nope'; known types: "
        "task_split, timeout, chunk_executed, docker_allocated, task_completed, merge, container_removed, "
        "agent_heartbeat, usage"
    )
    assert detail("/events/merge", b" " * (LIMIT + 1)) == (
        f"body: body is {LIMIT + 1} bytes; the limit is {LIMIT} (EDDIE_OTEL_MAX_BODY_BYTES)"
    )
    several = service.post("/events/task_split", content=b'{"agent": "", "chunks": 0}', headers=auth).json()
    assert [error["field"] for error in several["errors"]] == ["agent", "chunks", "depth"]


def test_client_disconnecting_mid_body_records_nothing(service: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert service.post("/events/merge", content=body("merge"), headers=headers).status_code == 202
    before = eddie_lines(scrape(service))
    assert b"merge_chunks_combined_total 3.0" in before
    with socket.create_connection(("127.0.0.1", service.base_url.port or 80), timeout=10) as sock:
        sock.sendall(
            b"POST /events/merge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"chu\r\n'
        )
    deadline = time.monotonic() + 10
    while rejections().get("merge", 0) < 1:
        assert time.monotonic() < deadline, "the disconnect was never noticed"
        time.sleep(0.02)

    assert eddie_lines(scrape(service)) == before
    assert service.get("/metrics/health").status_code == 200
