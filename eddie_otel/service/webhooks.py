"""The event webhooks: POST /events/{type} and POST /events, and every refusal before recording.

Answers to bad input, in the order they are checked on a POST:

- 401 when EDDIE_OTEL_WEBHOOK_TOKEN is set and `Authorization: Bearer <token>` is missing or wrong;
- 404 for an event type that does not exist, listing the known ones;
- 415 when Content-Type is not application/json, or names a charset other than UTF-8 (the body is not read);
- 413 when the body is larger than EDDIE_OTEL_MAX_BODY_BYTES (by Content-Length, or counted as it arrives);
- 422 when a batch holds more than MAX_BATCH_EVENTS events (refused before any event is validated: the
  schema's maxItems, so 422 like every other schema violation), when the body is not valid JSON, repeats
  a key in an object, or is not valid events.

Every error is `{"detail": "<field>: <what is wrong>", "errors": [{"field", "message"}]}`, with at
most MAX_ERRORS errors listed (`detail` then says how many there were), and an error records
nothing: a batch is validated whole before its first event is recorded. A valid event is recorded
through the recorder of the runtime the app was built with. A refused batch counts its events per
type in eddie_otel_events_total, except a batch over the cap, which counts once as `batch`.

Parsing stays on the event loop: the worst body under the default limit is refused in about
0.1 s (measured with `python -m tests.support.service_attack`), and parsing in worker threads
left their memory arenas growing with every large refusal.

With tracing on, a W3C `traceparent` header makes each `task_completed` and `chunk_executed`
event of the request a span of that trace: a child of the header's span, ending when the
request was received and starting `duration_seconds` before, so work done by agents in
other languages shows in the same tree (and its duration's exemplar points at it).
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pydantic_core
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from eddie_otel import tracing as traces
from eddie_otel.errors import EddieOtelError
from eddie_otel.recording import given_reason
from eddie_otel.runtime import Runtime
from eddie_otel.service.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    MAX_BATCH_EVENTS,
    BaseEvent,
    BatchTooLarge,
    ChunkExecutedEvent,
    EventBatch,
    FieldError,
    InvalidEvents,
    TaskCompletedEvent,
    parse_batch,
    parse_event,
)
from eddie_otel.service.openapi import schema_ref
from eddie_otel.service.schema import Accepted, Problem, problem
from eddie_otel.service.settings import ServiceSettings

__all__ = ["BATCH_TYPE", "UNKNOWN_TYPE", "add_event_routes"]

# The label value of eddie_otel_events_total for what names no known type: keeps the label bounded.
UNKNOWN_TYPE = "unknown"
# The label value for a rejected batch whose events could not be read.
BATCH_TYPE = "batch"

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong bearer token (when EDDIE_OTEL_WEBHOOK_TOKEN is set)"},
    413: {"model": Problem, "description": "Body larger than EDDIE_OTEL_MAX_BODY_BYTES"},
    415: {"model": Problem, "description": "Content-Type is not application/json, or its charset is not UTF-8"},
    422: {
        "model": Problem,
        "description": (
            f"Invalid JSON, a key repeated in an object, a batch of more than {MAX_BATCH_EVENTS} events, or an "
            "invalid event; `errors` name the fields (the first 20; `detail` then says how many there were)"
        ),
    },
}


class _Refused(EddieOtelError):
    def __init__(
        self,
        status: int,
        errors: Sequence[FieldError],
        rejected: dict[str, int],
        headers: dict[str, str] | None = None,
        total: int | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.errors = list(errors)
        self.rejected = rejected
        self.headers = headers or {}
        self.total = total


def add_event_routes(app: FastAPI, runtime: Runtime, service: ServiceSettings) -> None:
    """Add POST /events/{type} for each event type and POST /events, recording into `runtime`."""
    recorder = runtime.recorder
    token = None if service.webhook_token is None else service.webhook_token.encode("utf-8", "surrogateescape")
    limit = service.max_body_bytes

    async def handle(request: Request, type_name: str | None) -> Response:
        received = time.time_ns()
        try:
            events = await _receive(request, type_name, token, limit)
        except _Refused as refused:
            for name, count in refused.rejected.items():
                recorder.count_events(name, "rejected", count)
            return problem(refused.status, refused.errors, refused.headers, refused.total)
        tracing = recorder.tracing
        parent = None if tracing is None else traces.extract(request.headers)
        refused_splits = 0
        if parent is None:
            # No trace to join: the events are recorded without a span each (the common, fast path).
            for event in events:
                if not event.record(recorder):
                    refused_splits += 1
        else:
            for event in events:
                with _span(tracing, parent, event, received):
                    if not event.record(recorder):
                        refused_splits += 1
        for name, count in collections.Counter(event.type for event in events).items():
            recorder.count_events(name, "accepted", count)
        answer = Accepted(accepted=len(events), refused_splits=refused_splits)
        return JSONResponse(answer.model_dump(), status_code=202)

    for type_name, model in EVENT_MODELS.items():
        app.add_api_route(
            f"/events/{type_name}",
            _single(handle, type_name),
            methods=["POST"],
            status_code=202,
            response_model=Accepted,
            responses=_ERROR_RESPONSES,
            summary=f"Record one {type_name} event",
            description=(model.__doc__ or "").strip(),
            openapi_extra=_request_body(model.__name__),
            name=f"post_{type_name}",
            tags=["events"],
        )

    async def post_batch(request: Request) -> Response:
        return await handle(request, None)

    app.add_api_route(
        "/events",
        post_batch,
        methods=["POST"],
        status_code=202,
        response_model=Accepted,
        responses=_ERROR_RESPONSES,
        summary="Record a batch of events, all or none",
        description=(
            f"Every event carries its `type`. A batch holds at most {MAX_BATCH_EVENTS} events: a longer one is "
            "refused with 422 naming the cap before any event is read. The batch is validated whole before anything is "
            "recorded; errors name the index and field, like `events[3].chunks` (the first 20 of them, and "
            "`detail` says how many there were)."
        ),
        openapi_extra=_request_body(EventBatch.__name__),
        tags=["events"],
    )

    async def unknown_type(request: Request, type: str) -> Response:
        try:
            _authorize(request, token, UNKNOWN_TYPE)
        except _Refused as refused:
            recorder.count_events(UNKNOWN_TYPE, "rejected", 1)
            return problem(refused.status, refused.errors, refused.headers)
        recorder.count_events(UNKNOWN_TYPE, "rejected", 1)
        message = f"unknown event type {type[:64]!r}; known types: {', '.join(EVENT_TYPES)}"
        return problem(404, [FieldError(field="type", message=message)])

    app.add_api_route("/events/{type}", unknown_type, methods=["POST"], include_in_schema=False)


def _span(
    tracing: traces.Tracing | None, parent: Any, event: BaseEvent, received: int
) -> contextlib.AbstractContextManager[Any]:
    """The span of a finished task or chunk reported with a `traceparent`; nothing for other events."""
    if tracing is None or parent is None:
        return contextlib.nullcontext()
    if isinstance(event, TaskCompletedEvent):
        stage, agent = event.stage, event.agent
    elif isinstance(event, ChunkExecutedEvent):
        stage, agent = "chunk", event.agent
    else:
        return contextlib.nullcontext()
    error = None if event.success else given_reason("error" if event.reason is None else event.reason)[0]
    return tracing.remote(parent, stage, agent, event.duration_seconds, error, received)


def _single(
    handle: Callable[[Request, str | None], Awaitable[Response]], type_name: str
) -> Callable[[Request], Awaitable[Response]]:
    async def post_event(request: Request) -> Response:
        return await handle(request, type_name)

    return post_event


def _request_body(schema_name: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema_ref(schema_name)}}}}


def _authorize(request: Request, token: bytes | None, counted: str) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _Refused(
            401,
            [FieldError(field="Authorization", message="missing: send the header 'Authorization: Bearer <token>'")],
            {counted: 1},
            {"WWW-Authenticate": 'Bearer realm="eddie-otel"'},
        )
    # Header values arrive decoded as latin-1: encoding back gives the bytes that were sent.
    if not hmac.compare_digest(given.strip().encode("latin-1"), token):
        raise _Refused(
            401,
            [FieldError(field="Authorization", message="wrong bearer token")],
            {counted: 1},
            {"WWW-Authenticate": 'Bearer realm="eddie-otel", error="invalid_token"'},
        )


def _check_content_type(request: Request, counted: str) -> None:
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json":
        shown = media_type or "missing"
        raise _Refused(
            415,
            [FieldError(field="Content-Type", message=f"must be application/json, not {shown[:64]}")],
            {counted: 1},
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            message = f"charset must be utf-8 (JSON is UTF-8), not {charset[:64] or 'empty'}"
            raise _Refused(415, [FieldError(field="Content-Type", message=message)], {counted: 1})


async def _read_body(request: Request, limit: int, counted: str) -> bytes:
    def too_large(size: str) -> _Refused:
        message = f"body is {size} bytes; the limit is {limit} (EDDIE_OTEL_MAX_BODY_BYTES)"
        return _Refused(413, [FieldError(field="body", message=message)], {counted: 1})

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(declared)
    # Content-Length may be absent (chunked) or wrong: count what actually arrives.
    parts: list[bytes] = []
    size = 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise too_large(f"more than {limit}")
            parts.append(part)
    except ClientDisconnect:
        # Nobody will read the answer; what matters is that nothing is recorded and nothing is logged as a crash.
        raise _Refused(400, [FieldError(field="body", message="the client disconnected")], {counted: 1}) from None
    return b"".join(parts)


async def _receive(request: Request, type_name: str | None, token: bytes | None, limit: int) -> list[BaseEvent]:
    """The events of `request`, all valid; _Refused, counting what was rejected, otherwise."""
    counted = type_name if type_name is not None else BATCH_TYPE
    _authorize(request, token, counted)
    _check_content_type(request, counted)
    body = await _read_body(request, limit, counted)
    return _parse(body, type_name)


def _parse(body: bytes, type_name: str | None) -> list[BaseEvent]:
    try:
        return parse_batch(body) if type_name is None else [parse_event(type_name, body)]
    except BatchTooLarge as too_large:
        raise _Refused(422, too_large.errors, {BATCH_TYPE: 1}) from None
    except InvalidEvents as invalid:
        rejected = _batch_types(body) if type_name is None else {type_name: 1}
        raise _Refused(422, invalid.errors, rejected, total=invalid.total) from None


def _batch_types(body: bytes) -> dict[str, int]:
    """The events of a refused batch, counted per type (unknown for what names no type)."""
    try:
        # The parser pydantic used: a body too deep for it is refused here too, never a RecursionError.
        events = pydantic_core.from_json(body)["events"]
    except (ValueError, TypeError, KeyError):
        return {BATCH_TYPE: 1}
    if not isinstance(events, list):
        return {BATCH_TYPE: 1}
    counts: dict[str, int] = {}
    for event in events:
        name = event.get("type") if isinstance(event, dict) else None
        name = name if isinstance(name, str) and name in EVENT_MODELS else UNKNOWN_TYPE
        counts[name] = counts.get(name, 0) + 1
    return counts or {BATCH_TYPE: 1}
