"""The metrics service's own settings: the webhook token, CORS origins and the body limit.

They live apart from the recording settings, so that changing the token rebuilds
the app, never the MeterProvider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eddie_otel import environment as env
from eddie_otel.config import Option, integer, load_options, origins, text

__all__ = ["ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """What the metrics service can be told beyond the recording settings; build it with `ServiceSettings.load()`."""

    webhook_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    # 1 MiB: a batch of several thousand events, far from what one webhook call needs.
    max_body_bytes: int = 1_048_576

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **arguments: Any) -> ServiceSettings:
        """Service settings from `arguments` (None means "not given"), then `environ`, then defaults."""
        return load_options(cls, _OPTIONS, environ, arguments)


_OPTIONS: dict[str, Option] = {
    "webhook_token": text(env.EDDIE_OTEL_WEBHOOK_TOKEN),
    "cors_origins": origins(env.EDDIE_OTEL_CORS_ORIGINS),
    "max_body_bytes": integer(env.EDDIE_OTEL_MAX_BODY_BYTES, 64, 2**31),
}
