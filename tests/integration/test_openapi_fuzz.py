"""A bounded schemathesis run over /openapi.json, with and without the webhook token, finds nothing.

Every check schemathesis has runs on every answer, in both generation modes: valid bodies
must be accepted (and answered as documented), invalid ones refused with a documented 4xx.
Two things are told to the generator here, as properties of the test rather than the service:

- an operation without input (the GETs) has no invalid request to make, so negative mode skips it;
- `duplicates_removed <= chunks_combined` of a merge is a rule between two fields that no JSON
  Schema keyword states (the schema says it in words), so valid merges are made to follow it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

import eddie_otel
from eddie_otel.service import ServiceSettings, create_app
from eddie_otel.service.server import BackgroundServer
from tests.support.prometheus_server import PrometheusServer

TOKEN = "fuzz-s3cret"
# Enough to reach every field's bounds and every refusal; small enough for the whole file to run in well under 60 s.
MAX_EXAMPLES = 25


@pytest.fixture(params=[None, TOKEN], ids=["open", "token"])
def token(request: pytest.FixtureRequest) -> str | None:
    """The webhook token the service is built with (None: no token)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def served(token: str | None, prometheus_binary: str, tmp_path: Path) -> Iterator[BackgroundServer]:
    """The service on a free loopback port, with `token`, and a real Prometheus for GET /metrics/summary?scope=fleet."""
    runtime = eddie_otel.configure(serve=False)
    prometheus = PrometheusServer(prometheus_binary, tmp_path / "prometheus", [])
    service = ServiceSettings.load({}, webhook_token=token, prometheus_url=prometheus.url)
    try:
        with BackgroundServer(create_app(runtime, service)) as server:
            yield server
    finally:
        prometheus.stop()


def _has_input(operation: Any) -> bool:
    return bool(operation.body) or next(iter(operation.iter_parameters()), None) is not None


def _merges(case: Any) -> list[dict[str, Any]]:
    """The merge events of a generated body: the body of /events/merge, the merges of a batch."""
    body = case.body
    if not isinstance(body, dict):
        return []
    if case.operation.path == "/events/merge":
        return [body]
    if case.operation.path == "/events" and isinstance(body.get("events"), list):
        return [event for event in body["events"] if isinstance(event, dict) and event.get("type") == "merge"]
    return []


def _follow_merge_rule(case: Any) -> Any:
    """`case` with duplicates_removed and chunks_combined swapped where the first exceeds the second.

    Both fields have the same bounds, so the swapped body is as schema-valid as the generated one.
    """
    for merge in _merges(case):
        combined, duplicates = merge.get("chunks_combined"), merge.get("duplicates_removed")
        if isinstance(combined, int | float) and isinstance(duplicates, int | float) and duplicates > combined:
            merge["chunks_combined"], merge["duplicates_removed"] = duplicates, combined
    return case


def _cases(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    strategy = operation.as_strategy(generation_mode=mode)
    return strategy.map(_follow_merge_rule) if mode == GenerationMode.POSITIVE else strategy


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_the_service_does_what_its_openapi_says(
    served: BackgroundServer, token: str | None, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(served.url + "/openapi.json")
    document = schema.raw_schema
    if token is None:
        assert "securitySchemes" not in document["components"]
    else:
        assert document["components"]["securitySchemes"]["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "description": document["components"]["securitySchemes"]["bearer"]["description"],
        }
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(operation.method.upper(), operation.path) for operation in operations} >= {
        ("GET", "/metrics/health"),
        ("POST", "/events"),
        ("POST", "/events/task_split"),
        ("POST", "/events/merge"),
        ("POST", "/events/chunk_executed"),
        ("POST", "/events/task_completed"),
    }
    failures: list[str] = []
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not _has_input(operation):
            continue
        headers = None if token is None or operation.method.upper() != "POST" else {"Authorization": f"Bearer {token}"}

        @given(case=_cases(operation, mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=headers)  # noqa: B023 - each operation runs before the next is built

        try:
            fuzz()
        except Exception as error:  # every operation's failures are reported together
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
