"""The service's own response bodies: an accepted webhook, a refusal and the health check."""

from __future__ import annotations

from pydantic import BaseModel, Field

from eddie_otel.service.events import FieldError

__all__ = ["Accepted", "Health", "Problem"]


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


class Health(BaseModel):
    """The service is up."""

    status: str
    version: str
    service: str
    uptime_seconds: float
