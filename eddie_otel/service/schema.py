"""The service's own response bodies: an accepted webhook, a refusal and the health check."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from eddie_otel.service.events import FieldError

__all__ = ["Accepted", "Health", "Problem", "problem"]


class Accepted(BaseModel):
    """How many events were recorded, and how many of them were splits refused past the maximum depth."""

    accepted: int = Field(ge=0, description="events accepted, refused splits included")
    refused_splits: int = Field(
        ge=0, description="task_split events past the maximum fallback depth (counted in fallback_depth_exceeded_total)"
    )


class Problem(BaseModel):
    """Why a request was refused: a one-line `detail`, and each bad field."""

    detail: str
    errors: list[FieldError]


def problem(status: int, errors: Sequence[FieldError], headers: dict[str, str] | None = None) -> JSONResponse:
    """The refusal every route answers: `{"detail": "<field>: <message>; ...", "errors": [...]}`."""
    detail = "; ".join(f"{error.field}: {error.message}" for error in errors)
    content = {"detail": detail, "errors": [error.model_dump() for error in errors]}
    return JSONResponse(content, status_code=status, headers=headers)


class Health(BaseModel):
    """The service is up."""

    status: str
    version: str
    service: str
    uptime_seconds: float
