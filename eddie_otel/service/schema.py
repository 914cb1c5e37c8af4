"""The service's own response bodies: an accepted webhook, a refusal and the health check."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from eddie_otel.service.events import MAX_ERRORS, FieldError

__all__ = ["MAX_FIELD_LENGTH", "MAX_MESSAGE_LENGTH", "Accepted", "Health", "Problem", "problem"]


class Accepted(BaseModel):
    """How many events were recorded, and how many of them were splits refused past the maximum depth."""

    accepted: int = Field(ge=0, description="events accepted, refused splits included")
    refused_splits: int = Field(
        ge=0, description="task_split events past the maximum fallback depth (counted in fallback_depth_exceeded_total)"
    )


class Problem(BaseModel):
    """Why a request was refused: a one-line `detail`, and the first bad fields (at most MAX_ERRORS).

    When there were more, `detail` ends with how many there were in all.
    """

    detail: str
    errors: list[FieldError] = Field(max_length=MAX_ERRORS)


# Longest field name and message an answer repeats: what a client sent is never echoed at length.
MAX_FIELD_LENGTH = 128
MAX_MESSAGE_LENGTH = 512


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problem(
    status: int, errors: Sequence[FieldError], headers: dict[str, str] | None = None, total: int | None = None
) -> JSONResponse:
    """The refusal every route answers: `{"detail": "<field>: <message>; ...", "errors": [...]}`.

    Only the first MAX_ERRORS errors are listed, each field and message clipped: the answer stays
    a few kilobytes whatever the request. `total` (default: len(errors)) is how many there were.
    """
    total = len(errors) if total is None else max(total, len(errors))
    shown = [
        FieldError(field=_clip(error.field, MAX_FIELD_LENGTH), message=_clip(error.message, MAX_MESSAGE_LENGTH))
        for error in list(errors)[:MAX_ERRORS]
    ]
    detail = "; ".join(f"{error.field}: {error.message}" for error in shown)
    if total > len(shown):
        detail += f" (the first {len(shown)} of {total} errors)"
    content = {"detail": detail, "errors": [error.model_dump() for error in shown]}
    return JSONResponse(content, status_code=status, headers=headers)


class Health(BaseModel):
    """The service is up."""

    status: str
    version: str
    service: str
    uptime_seconds: float
    # With `serve --docker`, while the engine cannot be reached (status "degraded"): why not.
    docker: str | None = None
