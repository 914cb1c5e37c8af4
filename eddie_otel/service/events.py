"""The webhook events: one strict pydantic model per type, parsing with field-naming errors, and recording.

`EVENT_CLASSES` is the one list of event types: the name of each is the default of
its model's `type` field, and `EVENT_MODELS`, `EVENT_TYPES`, the `Event` union of a
batch, the routes and their documentation are all derived from it.

Models are strict: `"3"` is not an integer, `true` is not a number, floats must be
finite, an integral float (`472.0`) is the integer it equals (JSON Schema's `integer`
says so too), while `472.5` is refused, unknown fields are refused, and label values follow the rules of
`eddie_otel.labels` (letters, digits and `_.:/-`, 1 to 64 characters). Upper bounds
keep every count exactly representable in the float cells of the exporter. An event
that parses can always be recorded: the record calls see nothing they would refuse.
A duration of `-0.0` is read as `0.0`. `task_completed` must say whether it succeeded.

What a refusal costs is bounded whatever the body: a batch holds at most
MAX_BATCH_EVENTS events (a longer one is refused before any event is read), a body
whose JSON repeats a key in one object is refused naming the key, and InvalidEvents
keeps the first MAX_ERRORS errors and the count of all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from eddie_otel.catalogue import ADJUSTMENT_TYPES
from eddie_otel.errors import EddieOtelError
from eddie_otel.labels import LABEL_VALUE_RE, MAX_LABEL_VALUE_LENGTH, check_label_value
from eddie_otel.recording import Recorder, checks
from eddie_otel.recording.checks import (
    MAX_CAPACITY,
    MAX_CHUNKS,
    MAX_CHUNKS_COMBINED,
    MAX_COST_USD,
    MAX_CPU_MILLICORES,
    MAX_DEPTH,
    MAX_DURATION_SECONDS,
    MAX_MEMORY_BYTES,
    MAX_TOKENS,
)

__all__ = [
    "ADJUSTMENTS",
    "EVENT_CLASSES",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "MAX_BATCH_EVENTS",
    "MAX_ERRORS",
    "AgentHeartbeatEvent",
    "BaseEvent",
    "BatchTooLarge",
    "ChunkExecutedEvent",
    "ContainerRemovedEvent",
    "DockerAllocatedEvent",
    "Event",
    "EventBatch",
    "FieldError",
    "InvalidEvents",
    "MergeEvent",
    "TaskCompletedEvent",
    "TaskSplitEvent",
    "TimeoutEvent",
    "UsageEvent",
    "parse_batch",
    "parse_event",
]

# Never a label, only for the sender's logs: any text up to this length.
MAX_TASK_ID_LENGTH = 256
# Events in one POST /events: far more than one agent reports at once, and a bound on the work of one refusal.
MAX_BATCH_EVENTS = 1_000
# Errors an answer lists; the refusal still counts them all.
MAX_ERRORS = 20


def _check_label(value: str, info: ValidationInfo) -> str:
    return check_label_value(info.field_name or "label", value)


# A label value: validated by check_label_value, described in the schema by the same rule.
LabelValue = Annotated[
    str,
    Field(
        json_schema_extra={
            "pattern": f"^{LABEL_VALUE_RE.pattern}$",
            "minLength": 1,
            "maxLength": MAX_LABEL_VALUE_LENGTH,
        }
    ),
    AfterValidator(_check_label),
]


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer field: what JSON Schema's `integer` accepts, 472.0 included; strict otherwise.
Integer = Annotated[int, BeforeValidator(_integral)]
# The adjustment of a first allocation; every other value is an elastic adjustment of the catalogue.
INITIAL_ADJUSTMENT = "initial"
ADJUSTMENTS: tuple[str, ...] = (INITIAL_ADJUSTMENT, *ADJUSTMENT_TYPES)
if TYPE_CHECKING:
    Adjustment = str
else:
    # A Literal built from the catalogue: the schema's enum and the 422 message list the same values.
    Adjustment = Literal[ADJUSTMENTS]


def _no_negative_zero(value: float) -> float:
    # -0.0 passes `ge=0` (it equals 0): record it as the 0.0 it is, never as a negative-signed value.
    return value + 0.0


Seconds = Annotated[
    float,
    Field(ge=0, le=MAX_DURATION_SECONDS, description="duration in seconds (finite, ≥ 0; -0.0 is read as 0.0)"),
    AfterValidator(_no_negative_zero),
]


Cost = Annotated[
    float,
    Field(ge=0, le=MAX_COST_USD, description="US dollars (finite, ≥ 0)"),
    AfterValidator(_no_negative_zero),
]
Tokens = Annotated[
    int,
    BeforeValidator(_integral),
    Field(ge=0, le=MAX_TOKENS, json_schema_extra={"minimum": 0, "maximum": MAX_TOKENS}),
]
# How many tasks an agent runs at once (the bounds in the union's integer branch, where the schema states them).
Capacity = Annotated[
    int,
    BeforeValidator(_integral),
    Field(ge=1, le=MAX_CAPACITY, json_schema_extra={"minimum": 1, "maximum": MAX_CAPACITY}),
]


class BaseEvent(BaseModel):
    """What every event model shares: strict parsing, a `type`, and recording itself."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    type: str

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`'s trusted calls; False when the recorder refused it.

        A parsed event is already valid: the only refusal is a split past the maximum fallback depth.
        """
        raise NotImplementedError  # pragma: no cover - every event model overrides it


class TaskSplitEvent(BaseEvent):
    """A task or chunk at fallback `depth` split into `chunks` chunks (task_split_total, task_split_chunks_total).

    A split deeper than the maximum fallback depth counts fallback_depth_exceeded_total instead.
    """

    type: Literal["task_split"] = "task_split"
    agent: LabelValue = Field(description="agent that split the task")
    chunks: Integer = Field(ge=1, le=MAX_CHUNKS, description="chunks created")
    depth: Integer = Field(ge=0, le=MAX_DEPTH, description="fallback depth of the split (0 = the original task)")
    task_id: str | None = Field(
        default=None, max_length=MAX_TASK_ID_LENGTH, description="for the sender's logs; never a label"
    )

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`; False when the split is past the maximum depth."""
        return recorder.split(self.agent, self.chunks, self.depth)


class TimeoutEvent(BaseEvent):
    """A task or chunk of `stage` on `agent` timed out (timeout_events_total)."""

    type: Literal["timeout"] = "timeout"
    agent: LabelValue
    stage: LabelValue
    reason: LabelValue = "timeout"

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.timeout(self.agent, self.stage, self.reason)
        return True


# The schema of "reason only when success is false": success is false, or reason is absent or null.
# JSON Schema says it with one anyOf, so the document states the rule the validator below enforces.
_REASON_ONLY_ON_FAILURE: dict[str, Any] = {
    "anyOf": [
        {"properties": {"success": {"const": False}}, "required": ["success"]},
        {"properties": {"reason": {"type": "null"}}},
    ]
}


def _reason_only_on_failure(what: str) -> Any:
    """A validator of `reason`: only a failure (success false) of `what` has one."""

    def check(reason: str | None, info: ValidationInfo) -> str | None:
        checks.reason_on_failure(info.data.get("success", False) is True, reason, what)
        return reason

    return field_validator("reason")(check)


class ChunkExecutedEvent(BaseEvent):
    """A chunk finished on `agent` (chunk_execution_seconds, agent_tasks_executed_total).

    A failure (`success` false) counts chunk_failure_total with `reason` (default "error");
    a reason of "timeout" also counts a timeout event.
    """

    model_config = ConfigDict(json_schema_extra=_REASON_ONLY_ON_FAILURE)

    type: Literal["chunk_executed"] = "chunk_executed"
    agent: LabelValue
    duration_seconds: Seconds
    success: bool = True
    reason: LabelValue | None = Field(default=None, description="why the chunk failed; only with success false")
    queued_seconds: Seconds | None = Field(
        default=None,
        le=MAX_DURATION_SECONDS,
        description="seconds between the split that created the chunk and its start (chunk_queue_wait_seconds)",
    )

    _reason = _reason_only_on_failure("chunks")

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.chunk_finished(self.agent, self.duration_seconds, self.success, self.reason, self.queued_seconds)
        return True


class DockerAllocatedEvent(BaseEvent):
    """Limits set on an agent container (docker_container_cpu_limit, docker_container_memory_limit_bytes).

    An `adjustment` other than `initial` also counts docker_elastic_adjustment_total.
    """

    type: Literal["docker_allocated"] = "docker_allocated"
    container: LabelValue
    cpu_millicores: Integer = Field(ge=1, le=MAX_CPU_MILLICORES, description="CPU limit in millicores")
    memory_bytes: Integer = Field(ge=1, le=MAX_MEMORY_BYTES, description="memory limit in bytes")
    adjustment: Adjustment = INITIAL_ADJUSTMENT

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.allocation(self.container, self.cpu_millicores, self.memory_bytes, self.adjustment)
        return True


class TaskCompletedEvent(BaseEvent):
    """A task finished (task_execution_seconds, task_success_total or task_failure_total).

    `reason` is for failures only (default "error"); a failure with reason "timeout" also
    counts a timeout event. With `agent`, agent_tasks_executed_total counts it too.
    """

    model_config = ConfigDict(json_schema_extra=_REASON_ONLY_ON_FAILURE)

    type: Literal["task_completed"] = "task_completed"
    stage: LabelValue
    duration_seconds: Seconds
    success: bool = Field(description="whether the task succeeded; required: a missing value is never a success")
    reason: LabelValue | None = Field(default=None, description="why the task failed; only with success false")
    agent: LabelValue | None = None
    split: bool = Field(
        default=False, description="whether the task was split at least once (task_fallback_total: rescued or failed)"
    )

    _reason = _reason_only_on_failure("tasks")

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.task_finished(self.stage, self.duration_seconds, self.success, self.reason, self.agent, self.split)
        return True


class MergeEvent(BaseEvent):
    """Chunk results merged (merge_chunks_combined_total, merge_deduplication_total).

    `duplicates_removed` is at most `chunks_combined`: a rule between two fields, which no
    JSON Schema keyword states, so the schema gives it in words; a body breaking it gets 422.
    """

    type: Literal["merge"] = "merge"
    chunks_combined: Integer = Field(ge=0, le=MAX_CHUNKS_COMBINED)
    duplicates_removed: Integer = Field(ge=0, le=MAX_CHUNKS_COMBINED, description="at most chunks_combined")

    @field_validator("duplicates_removed")
    @classmethod
    def _at_most_combined(cls, duplicates: int, info: ValidationInfo) -> int:
        combined = info.data.get("chunks_combined")
        if combined is not None:
            checks.merge_counts(combined, duplicates)
        return duplicates

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.merge(self.chunks_combined, self.duplicates_removed)
        return True


class ContainerRemovedEvent(BaseEvent):
    """An agent container is gone: every series with its `container` label value is dropped, and its slot freed.

    Short-lived containers otherwise keep their last limits in the exposition forever.
    """

    type: Literal["container_removed"] = "container_removed"
    container: LabelValue

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.forget("container", self.container)
        return True


class AgentHeartbeatEvent(BaseEvent):
    """An agent is alive (agent_last_seen_timestamp_seconds), and, with `capacity`, runs that many tasks at once.

    agent_capacity is set to `capacity`; without it, the capacity already recorded stays.
    """

    type: Literal["agent_heartbeat"] = "agent_heartbeat"
    agent: LabelValue
    capacity: Capacity | None = Field(default=None, description="tasks and chunks the agent can run at once")

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.capacity(self.agent, self.capacity)
        return True


class UsageEvent(BaseEvent):
    """Model usage by an agent (agent_tokens_total, agent_cost_usd_total).

    Without `cost_usd`, the cost comes from the price table of EDDIE_OTEL_PRICES_FILE; a model it
    does not price records tokens only.
    """

    type: Literal["usage"] = "usage"
    agent: LabelValue
    model: LabelValue
    input_tokens: Tokens = Field(description="input tokens")
    output_tokens: Tokens = Field(description="output tokens")
    cost_usd: Cost | None = Field(default=None, description="cost in US dollars; without it, priced from the table")

    def record(self, recorder: Recorder) -> bool:
        """Record this event through `recorder`."""
        recorder.usage(self.agent, self.model, self.input_tokens, self.output_tokens, self.cost_usd)
        return True


# The one list of event types, in the order the routes and messages give them.
EVENT_CLASSES: tuple[type[BaseEvent], ...] = (
    TaskSplitEvent,
    TimeoutEvent,
    ChunkExecutedEvent,
    DockerAllocatedEvent,
    TaskCompletedEvent,
    MergeEvent,
    ContainerRemovedEvent,
    AgentHeartbeatEvent,
    UsageEvent,
)
EVENT_MODELS: Mapping[str, type[BaseEvent]] = {model.model_fields["type"].default: model for model in EVENT_CLASSES}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)

if TYPE_CHECKING:
    Event = BaseEvent
else:
    # Any event, chosen by its `type`: pydantic reads only the model that type names.
    Event = Annotated[Union[EVENT_CLASSES], Field(discriminator="type")]  # noqa: UP007 - built from a tuple


def _type_required_in_batch(schema: dict[str, Any]) -> None:
    # A single event's route knows its type, so its model's `type` has a default; in a batch only
    # `type` tells the events apart, and pydantic refuses an event without it.
    schema["properties"]["events"]["items"]["required"] = ["type"]


class EventBatch(BaseModel):
    """Several events of any types, each with its `type`; recorded all or none."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        allow_inf_nan=False,
        frozen=True,
        json_schema_extra=_type_required_in_batch,
    )

    # pydantic checks a JSON array's length before it reads any element: a longer batch costs one error.
    events: list[Event] = Field(max_length=MAX_BATCH_EVENTS, description=f"at most {MAX_BATCH_EVENTS} events")


class FieldError(BaseModel):
    """One reason an event was refused: the field (`events[3].chunks`, `body`) and what is wrong."""

    field: str
    message: str


class InvalidEvents(EddieOtelError, ValueError):
    """The body does not hold valid events; `errors` name the first MAX_ERRORS bad fields, `total` counts all."""

    def __init__(self, errors: Sequence[FieldError], total: int | None = None) -> None:
        self.errors = list(errors)[:MAX_ERRORS]
        self.total = max(len(errors) if total is None else total, len(self.errors))
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in self.errors))


class BatchTooLarge(InvalidEvents):
    """A batch of more than MAX_BATCH_EVENTS events, refused before any of them was read."""


def parse_event(type_name: str, body: bytes) -> BaseEvent:
    """The event of type `type_name` in the JSON `body`; InvalidEvents naming the bad fields otherwise."""
    try:
        event = EVENT_MODELS[type_name].model_validate_json(body)
    except ValidationError as error:
        _refuse_duplicate_keys(body, failed=True)
        raise InvalidEvents(*_field_errors(error)) from None
    _refuse_duplicate_keys(body)
    return event


def parse_batch(body: bytes) -> list[BaseEvent]:
    """The events of a JSON batch `{"events": [...]}`; InvalidEvents naming the bad fields otherwise.

    BatchTooLarge when it holds more than MAX_BATCH_EVENTS events: their contents are never validated.
    """
    try:
        events = list(EventBatch.model_validate_json(body).events)
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False) if error.error_count() <= 2 else ():
            if item["type"] == "too_long" and tuple(item["loc"]) == ("events",):
                given = item.get("ctx", {}).get("actual_length", "more")
                message = f"the batch has {given} events; the limit is {MAX_BATCH_EVENTS} per batch"
                raise BatchTooLarge([FieldError(field="events", message=message)]) from None
        _refuse_duplicate_keys(body, failed=True)
        raise InvalidEvents(*_field_errors(error)) from None
    _refuse_duplicate_keys(body)
    return events


# Keys a valid body can hold: `events`, and each event's fields. More means unknown fields, each one an
# error pydantic would list: such a body is refused as a whole, without building an error per key.
_MAX_FIELDS = max(len(model.model_fields) for model in EVENT_CLASSES)
MAX_KEYS = 1 + MAX_BATCH_EVENTS * _MAX_FIELDS


class _KeyCheck:
    """An object_pairs_hook that refuses a repeated key and counts the keys of the whole body."""

    def __init__(self) -> None:
        self.keys = 0

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        self.keys += len(pairs)
        if len(found) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    message = f"duplicate key {key[:64]!r}: each key may appear once in an object"
                    raise InvalidEvents([FieldError(field="body", message=message)])
                seen.add(key)
        return found


def _refuse_duplicate_keys(body: bytes, failed: bool = False) -> None:
    """InvalidEvents when an object of `body` repeats a key (a JSON parser would silently keep the last one).

    With `failed` (pydantic refused the body), also when the body holds more keys than valid events can.
    """
    check = _KeyCheck()
    try:
        json.loads(body, object_pairs_hook=check)
    except (ValueError, RecursionError) as error:
        if isinstance(error, InvalidEvents):
            raise
        # Not JSON stdlib reads (or too deep for it): pydantic's own answer says what is wrong.
        return
    if failed and check.keys > MAX_KEYS:
        message = (
            f"the body holds {check.keys} keys; valid events hold at most {MAX_KEYS} "
            f"({_MAX_FIELDS} fields per event): unknown fields"
        )
        raise InvalidEvents([FieldError(field="body", message=message)])


def _field_errors(error: ValidationError) -> tuple[list[FieldError], int]:
    """The first MAX_ERRORS errors of `error` as FieldErrors, and how many there are in all."""
    found = []
    for item in error.errors(include_url=False, include_input=False)[:MAX_ERRORS]:
        loc: list[Any] = list(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        kind = item["type"]
        # A batch element's location carries the event type pydantic chose (events, 3, merge, field).
        if len(loc) >= 3 and loc[0] == "events" and isinstance(loc[1], int) and loc[2] in EVENT_MODELS:
            del loc[2]
        if kind == "union_tag_not_found":
            loc.append("type")
            message = f"Field required; one of {', '.join(EVENT_TYPES)}"
        elif kind == "union_tag_invalid":
            loc.append("type")
            tag = str(item.get("ctx", {}).get("tag"))
            message = f"unknown event type {tag[:64]!r}; one of {', '.join(EVENT_TYPES)}"
        found.append(FieldError(field=_path(loc), message=message))
    return found, error.error_count()


def _path(loc: Sequence[Any]) -> str:
    if not loc:
        return "body"
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path
