"""The errors of grafana-setup."""

from __future__ import annotations

from eddie_otel.errors import EddieOtelError

__all__ = ["GrafanaSetupError", "NotGrafana"]


class GrafanaSetupError(EddieOtelError):
    """grafana-setup cannot go on; the message is one line for the operator."""


class NotGrafana(EddieOtelError):
    """An answer that is not the JSON object Grafana's API sends."""
