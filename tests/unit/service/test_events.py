"""The webhook event models: one registry, strict parsing with named fields, and recording through a recorder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

import eddie_otel
from eddie_otel.catalogue import ADJUSTMENT_TYPES
from eddie_otel.errors import EddieOtelError
from eddie_otel.service.events import (
    ADJUSTMENTS,
    EVENT_CLASSES,
    EVENT_MODELS,
    EVENT_TYPES,
    DockerAllocatedEvent,
    EventBatch,
    InvalidEvents,
    parse_batch,
    parse_event,
)

# The smallest valid body of each event type.
MINIMAL: dict[str, dict[str, Any]] = {
    "task_split": {"agent": "a1", "chunks": 1, "depth": 0},
    "timeout": {"agent": "a1", "stage": "review"},
    "chunk_executed": {"agent": "a1", "duration_seconds": 0.0},
    "docker_allocated": {"container": "c1", "cpu_millicores": 1, "memory_bytes": 1},
    "task_completed": {"stage": "review", "duration_seconds": 0.0, "success": True},
    "merge": {"chunks_combined": 0, "duplicates_removed": 0},
    "container_removed": {"container": "c1"},
    "agent_heartbeat": {"agent": "a1"},
    "usage": {"agent": "a1", "model": "m1", "input_tokens": 0, "output_tokens": 0},
}


class FakeRecorder:
    """Remembers every call made to it, as (method, arguments)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*arguments: Any) -> None:
            self.calls.append((name, arguments))

        return call


def encoded(value: object) -> bytes:
    return json.dumps(value).encode()


def test_the_registry_comes_from_one_tuple() -> None:
    assert tuple(model.model_fields["type"].default for model in EVENT_CLASSES) == EVENT_TYPES
    assert tuple(EVENT_MODELS.values()) == EVENT_CLASSES
    assert EVENT_TYPES == (
        "task_split",
        "timeout",
        "chunk_executed",
        "docker_allocated",
        "task_completed",
        "merge",
        "container_removed",
        "agent_heartbeat",
        "usage",
    )
    assert set(MINIMAL) == set(EVENT_TYPES)


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_every_model_parses_a_minimal_body(type_name: str) -> None:
    event = parse_event(type_name, encoded(MINIMAL[type_name]))

    assert type(event) is EVENT_MODELS[type_name]
    assert event.type == type_name


def test_the_batch_union_chooses_the_model_by_type() -> None:
    events = parse_batch(encoded({"events": [{"type": name, **body} for name, body in MINIMAL.items()]}))

    assert [type(event) for event in events] == list(EVENT_CLASSES)
    assert EventBatch.model_json_schema()["properties"]["events"]["items"]["discriminator"]["propertyName"] == "type"


def test_adjustments_are_initial_and_the_catalogue_ones() -> None:
    assert ("initial", *ADJUSTMENT_TYPES) == ADJUSTMENTS
    schema = DockerAllocatedEvent.model_json_schema()["properties"]["adjustment"]
    assert schema["enum"] == list(ADJUSTMENTS)
    assert schema["default"] == "initial"


@pytest.mark.parametrize(
    ("type_name", "changes", "field", "message"),
    [
        ("task_split", {"chunks": 0}, "chunks", "greater than or equal to 1"),
        ("task_split", {"chunks": "3"}, "chunks", "valid integer"),
        ("timeout", {"agent": "a b"}, "agent", "agent"),
        ("chunk_executed", {"duration_seconds": -1.0}, "duration_seconds", "greater than or equal to 0"),
        ("chunk_executed", {"queued_seconds": -0.5}, "queued_seconds", "greater than or equal to 0"),
        ("chunk_executed", {"queued_seconds": "1"}, "queued_seconds", "valid number"),
        ("task_completed", {"split": 1}, "split", "valid boolean"),
        ("agent_heartbeat", {"capacity": 0}, "capacity", "greater than or equal to 1"),
        ("agent_heartbeat", {"capacity": 1.5}, "capacity", "valid integer"),
        ("usage", {"input_tokens": -1}, "input_tokens", "greater than or equal to 0"),
        ("usage", {"output_tokens": True}, "output_tokens", "valid integer"),
        ("usage", {"cost_usd": -0.01}, "cost_usd", "greater than or equal to 0"),
        ("usage", {"model": "gpt 4"}, "model", "model"),
        ("docker_allocated", {"adjustment": "sideways"}, "adjustment", "'initial', 'cpu_up', 'cpu_down'"),
        ("task_completed", {"reason": "oops"}, "reason", "reason is only for failed tasks"),
        ("merge", {"duplicates_removed": 1}, "duplicates_removed", "cannot exceed chunks_combined"),
        ("merge", {"colour": "blue"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_bad_fields_are_named(type_name: str, changes: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidEvents) as raised:
        parse_event(type_name, encoded({**MINIMAL[type_name], **changes}))

    assert [error.field for error in raised.value.errors] == [field]
    assert message in raised.value.errors[0].message
    assert str(raised.value).startswith(f"{field}: ")


def _parses(type_name: str | None, body: object) -> bool:
    try:
        parse_batch(encoded(body)) if type_name is None else parse_event(type_name, encoded(body))
    except InvalidEvents:
        return False
    return True


@pytest.mark.parametrize(
    ("type_name", "body"),
    [
        ("chunk_executed", {**MINIMAL["chunk_executed"], "success": False, "reason": "oom"}),
        ("chunk_executed", {**MINIMAL["chunk_executed"], "reason": "oom"}),
        ("chunk_executed", {**MINIMAL["chunk_executed"], "success": True, "reason": "oom"}),
        ("chunk_executed", {**MINIMAL["chunk_executed"], "success": True, "reason": None}),
        ("task_completed", {**MINIMAL["task_completed"], "success": False}),
        ("task_completed", {**MINIMAL["task_completed"], "success": False, "reason": "timeout"}),
        ("task_completed", {**MINIMAL["task_completed"], "reason": "oops"}),
        ("task_split", {**MINIMAL["task_split"], "chunks": 2.0, "depth": 0.0}),
        ("task_split", {**MINIMAL["task_split"], "chunks": 2.5}),
        ("task_split", {**MINIMAL["task_split"], "chunks": True}),
        ("timeout", {**MINIMAL["timeout"], "agent": "a b"}),
        ("timeout", {**MINIMAL["timeout"], "agent": "a1\n"}),
        ("merge", {"chunks_combined": 3.0, "duplicates_removed": 3}),
        (None, {"events": [{"type": name, **body} for name, body in MINIMAL.items()]}),
        (None, {"events": [MINIMAL["task_split"]]}),
        (None, {"events": [{"type": "chunk_executed", **MINIMAL["chunk_executed"], "reason": "oom"}]}),
        (None, {"events": [{"type": "task_split", **MINIMAL["merge"]}]}),
    ],
)
def test_the_json_schema_and_the_validator_agree(type_name: str | None, body: dict[str, Any]) -> None:
    model = EventBatch if type_name is None else EVENT_MODELS[type_name]
    schema = jsonschema_rs.validator_for(model.model_json_schema())

    assert schema.is_valid(body) == _parses(type_name, body)


def test_the_one_rule_the_schema_states_in_words_is_merges_duplicates_at_most_combined() -> None:
    body = {"chunks_combined": 1, "duplicates_removed": 2}
    schema = EVENT_MODELS["merge"].model_json_schema()

    assert jsonschema_rs.validator_for(schema).is_valid(body)
    assert not _parses("merge", body)
    assert "`duplicates_removed` is at most `chunks_combined`" in schema["description"]


def test_bad_fields_of_a_batch_name_the_index() -> None:
    body = {
        "events": [{"type": "merge", **MINIMAL["merge"]}, {"type": "task_split", **MINIMAL["task_split"], "depth": -1}]
    }
    with pytest.raises(InvalidEvents) as raised:
        parse_batch(encoded(body))

    assert [error.field for error in raised.value.errors] == ["events[1].depth"]


def test_an_unknown_type_in_a_batch_lists_the_known_ones() -> None:
    with pytest.raises(InvalidEvents) as raised:
        parse_batch(encoded({"events": [{"type": "nope"}]}))

    (error,) = raised.value.errors
    assert error.field == "events[0].type"
    assert error.message == f"unknown event type 'nope'; one of {', '.join(EVENT_TYPES)}"


def test_invalid_events_is_an_eddie_error_and_a_value_error() -> None:
    assert issubclass(InvalidEvents, EddieOtelError)
    assert issubclass(InvalidEvents, ValueError)


@pytest.mark.parametrize(
    ("type_name", "body", "call"),
    [
        ("task_split", {"agent": "a1", "chunks": 4, "depth": 2, "task_id": "t-9"}, ("split", ("a1", 4, 2))),
        ("timeout", {"agent": "a1", "stage": "review"}, ("timeout", ("a1", "review", "timeout"))),
        (
            "chunk_executed",
            {"agent": "a2", "duration_seconds": 1.5, "success": False},
            ("chunk_finished", ("a2", 1.5, False, None, None)),
        ),
        (
            "chunk_executed",
            {"agent": "a2", "duration_seconds": 1.5, "queued_seconds": 4},
            ("chunk_finished", ("a2", 1.5, True, None, 4.0)),
        ),
        (
            "docker_allocated",
            {"container": "c1", "cpu_millicores": 500, "memory_bytes": 1024, "adjustment": "cpu_up"},
            ("allocation", ("c1", 500, 1024, "cpu_up")),
        ),
        (
            "task_completed",
            {"stage": "test", "duration_seconds": 2.0, "success": False, "reason": "crash", "agent": "a3"},
            ("task_finished", ("test", 2.0, False, "crash", "a3", False)),
        ),
        (
            "task_completed",
            {"stage": "test", "duration_seconds": 2.0, "success": True},
            ("task_finished", ("test", 2.0, True, None, None, False)),
        ),
        (
            "task_completed",
            {"stage": "test", "duration_seconds": 2.0, "success": True, "split": True},
            ("task_finished", ("test", 2.0, True, None, None, True)),
        ),
        ("agent_heartbeat", {"agent": "a1", "capacity": 4}, ("capacity", ("a1", 4))),
        ("agent_heartbeat", {"agent": "a1"}, ("capacity", ("a1", None))),
        (
            "usage",
            {"agent": "a1", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.25},
            ("usage", ("a1", "gpt-4o", 10, 2, 0.25)),
        ),
        (
            "usage",
            {"agent": "a1", "model": "gpt-4o", "input_tokens": 10.0, "output_tokens": 2},
            ("usage", ("a1", "gpt-4o", 10, 2, None)),
        ),
        ("merge", {"chunks_combined": 5, "duplicates_removed": 1}, ("merge", (5, 1))),
        ("container_removed", {"container": "c7"}, ("forget", ("container", "c7"))),
    ],
)
def test_record_calls_the_recorder_once(
    type_name: str, body: dict[str, object], call: tuple[str, tuple[Any, ...]]
) -> None:
    recorder = FakeRecorder()

    parse_event(type_name, encoded(body)).record(recorder)

    assert recorder.calls == [call]


@pytest.mark.parametrize(("depth", "recorded"), [(3, True), (4, False)])
def test_record_says_whether_a_split_was_refused(depth: int, recorded: bool) -> None:
    runtime = eddie_otel.configure(serve=False, max_fallback_depth=3)
    event = parse_event("task_split", encoded({"agent": "a1", "chunks": 2, "depth": depth}))

    assert event.record(runtime.recorder) is recorded


def test_every_other_event_is_recorded() -> None:
    recorder = FakeRecorder()

    others = [parse_event(name, encoded(body)) for name, body in MINIMAL.items() if name != "task_split"]

    assert all(event.record(recorder) for event in others)


def test_the_readme_lists_every_event_type_with_its_fields() -> None:
    readme = " ".join((Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8").split())
    for name, model in EVENT_MODELS.items():
        fields = ", ".join(field for field in model.model_fields if field != "type")
        assert f"`{name}` ({fields})" in readme
