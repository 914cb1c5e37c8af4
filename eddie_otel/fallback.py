"""What a task's context says about its fallback: whether it was split, when, and which chunks are its.

A `@task` call puts its `Mark` in the OpenTelemetry context (`TASK`) while it runs, whether or
not there are spans: `record_split` inside the task, or inside a chunk that carries the task's
context (`eddie_otel.propagate` into a thread pool), marks it split, and its end counts
task_fallback_total. The mark is mutable and shared by everything that carries that context.

The time of the split that created a chunk travels with the chunk: `propagate` snapshots it into
the context it captures (`SPLIT_AT`), `carrier()` writes it, with the task's stage, in the
`eddie-split` header. A chunk that finds either (or runs where its task's mark is split) is a
fallback chunk: its seconds and its usage's cost count as fallback of the task's stage, and the
time since the split is its queue wait. A running fallback chunk puts its stage in the context
(`CHUNK`), for the usage recorded inside it.

Only the public API of `opentelemetry.context` is used: `create_key`, `set_value`, `get_value`.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Mapping
from typing import Union

from opentelemetry import context as otel_context
from opentelemetry.context import Context, create_key, get_value, set_value

from eddie_otel.labels import LABEL_VALUE_RE

__all__ = [
    "CHUNK",
    "CURRENT",
    "HEADER",
    "SPLIT_AT",
    "TASK",
    "Mark",
    "chunk_stage",
    "from_headers",
    "header",
    "mark_split",
    "new_mark",
    "snapshot",
    "split_at",
    "task_mark",
]

# The task's Mark, the split time a chunk was created after, and a running fallback chunk's stage.
TASK = create_key("eddie_otel.task")
SPLIT_AT = create_key("eddie_otel.split_at")
CHUNK = create_key("eddie_otel.fallback_chunk")
# The header of `carrier()` that carries a split to a chunk in another process: `<unix seconds>;stage=<stage>`.
HEADER = "eddie-split"


# The context of a call that is not traced: the OpenTelemetry context with eddie's marks on it,
# held in a variable of eddie's own. Setting and resetting it is one step for the interpreter,
# where opentelemetry.context.detach catches and logs whatever is raised inside it: a signal
# handler's deadline raised there would never reach the application.
# What a running call holds: a task's mark on what was there before (`(mark, previous)`, one tuple:
# the hot path of a decorated task), or a context with eddie's marks (a chunk's, a generator's steps).
_Overlay = Union[tuple["Mark", "_Overlay"], Context, None]  # noqa: UP007 - recursive: forward references
_OVERLAY: contextvars.ContextVar[_Overlay] = contextvars.ContextVar("eddie_otel_fallback", default=None)
# The variable itself, for the decorators' hot path (set and reset there without a call of ours around them).
CURRENT = _OVERLAY


def enter(context: Context) -> contextvars.Token[_Overlay]:
    """Make `context` the one eddie's marks are read from (a call that is not traced); the token to `leave`."""
    return _OVERLAY.set(context)


def enter_task(mark: Mark) -> contextvars.Token[_Overlay]:
    """Make `mark` the current task's mark, over whatever was current; the token to `leave`."""
    return _OVERLAY.set((mark, _OVERLAY.get()))


def leave(token: contextvars.Token[_Overlay]) -> None:
    """Undo the `enter` or `enter_task` that gave `token`."""
    _OVERLAY.reset(token)


def current() -> Context:
    """OpenTelemetry's current context with eddie's marks (of the calls running here) on it."""
    context = otel_context.get_current()
    if _OVERLAY.get() is None:
        return context
    for key in (TASK, CHUNK, SPLIT_AT):
        value = _get(key, None)
        if value is not None:
            context = set_value(key, value, context)
    return context


def _get(key: str, context: Context | None) -> object:
    """The value of `key` in `context`; with None, eddie's own marks first, then OpenTelemetry's current context."""
    if context is None:
        overlay = _OVERLAY.get()
        while overlay is not None:
            if isinstance(overlay, tuple):
                if key == TASK:
                    return overlay[0]
                overlay = overlay[1]
                continue
            value = get_value(key, overlay)
            if value is not None:
                return value
            break
    return get_value(key, context)


class Mark:
    """A task's fallback state: its stage, whether it was split and when last, its span and its usage so far.

    The fields only, as slots: a decorated task's call record is its mark (a subclass, no object
    more per call), and sets `stage` and `split` at its start; `split_at` is set with `split`, and
    `span`, `input_tokens` and `output_tokens` may be unset (read them with `getattr`).
    """

    __slots__ = ("input_tokens", "output_tokens", "span", "split", "split_at", "stage")
    stage: str
    split: bool
    split_at: float
    # The task's span when traced (usage goes on it as gen_ai.usage.* attributes).
    span: object
    input_tokens: int
    output_tokens: int


class _Standalone(Mark):
    """A mark of its own: a chunk's that came from another process, with the split it came from."""

    __slots__ = ()


def new_mark(stage: str, split_at: float | None = None) -> Mark:
    """A mark of a task of `stage`, split at `split_at` (None: not split)."""
    mark = _Standalone()
    mark.stage = stage
    mark.split = split_at is not None
    mark.split_at = 0.0 if split_at is None else split_at
    return mark


def task_mark(context: Context | None = None) -> Mark | None:
    """The mark of the task whose context `context` (None: the current one) is, if any."""
    mark = _get(TASK, context)
    return mark if isinstance(mark, Mark) else None


def mark_split(now: float | None = None) -> None:
    """A split happened in the current context: its task (if any) is marked split, at `now` (Unix seconds)."""
    mark = task_mark()
    if mark is not None:
        mark.split_at = time.time() if now is None else now
        mark.split = True


def snapshot(context: Context) -> Context:
    """`context` with the time of its task's last split (for a chunk created after it), when it was split."""
    mark = task_mark(context)
    if mark is None or not mark.split:
        return context
    return set_value(SPLIT_AT, mark.split_at, context)


def header() -> tuple[str, str] | None:
    """The `eddie-split` header of the current context: its task's last split time and stage; None if not split."""
    mark = task_mark()
    if mark is None or not mark.split:
        return None
    return HEADER, f"{mark.split_at:.6f};stage={mark.stage}"


def from_headers(headers: Mapping[str, str] | None) -> tuple[float, str] | None:
    """(split time, stage) from the `eddie-split` header of `headers`; None when absent or malformed."""
    if not headers:
        return None
    value = None
    for key, found in headers.items():
        if str(key).lower() == HEADER:
            value = found
            break
    if not isinstance(value, str):
        return None
    at, _, stage = value.partition(";stage=")
    try:
        split_at = float(at)
    except ValueError:
        return None
    if not math.isfinite(split_at) or split_at < 0 or LABEL_VALUE_RE.fullmatch(stage) is None:
        return None
    return split_at, stage


def split_at(context: Context | None = None) -> float | None:
    """The split time `propagate` snapshotted into `context` (None: the current one), if any."""
    value = _get(SPLIT_AT, context)
    return value if isinstance(value, float) else None


def chunk_stage() -> str | None:
    """The stage of the fallback chunk running in the current context, if any."""
    stage = _get(CHUNK, None)
    return stage if isinstance(stage, str) else None
