"""The OpenTelemetry instrumentor: how `opentelemetry-instrument` (or an app) turns eddie-otel on and off.

`opentelemetry-instrument` finds it through the `opentelemetry_instrumentor` entry point
`eddie_otel` after the distro has installed the SDK providers, so `configure()` borrows
the installed MeterProvider: eddie's series leave through that provider's own exporters,
once. `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=eddie_otel` leaves it out.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

# The module opts out of type checking (`# type: ignore` at its top), so mypy sees no BaseInstrumentor in it.
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from eddie_otel import runtime
from eddie_otel.errors import EddieOtelError

__all__ = ["EddieOtelInstrumentor"]

logger = logging.getLogger("eddie_otel")


class EddieOtelInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Enables and configures eddie-otel on instrument(), shuts it down on uninstrument()."""

    def instrumentation_dependencies(self) -> Collection[str]:
        """No library to check: eddie-otel instruments its own decorators and record calls."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        """Enable recording and configure it on `meter_provider`/`tracer_provider`, else the installed ones.

        Never raises into the app's start: a configuration error is logged as one line.
        """
        runtime.enable()
        try:
            runtime.configure(
                meter_provider=kwargs.get("meter_provider"),
                tracer_provider=kwargs.get("tracer_provider"),
            )
        except EddieOtelError as error:
            logger.error("eddie-otel: %s", error)
        except Exception:
            logger.exception("eddie-otel: could not configure")

    def _uninstrument(self, **kwargs: Any) -> None:
        """Shut eddie-otel down; decorated calls then run without recording until instrument() again."""
        runtime.disable()
