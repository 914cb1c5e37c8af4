"""The errors of grafana-setup."""

from __future__ import annotations

from typing import Any

from eddie_otel.errors import EddieOtelError

__all__ = ["GrafanaHttpError", "GrafanaSetupError", "GrafanaUnreachable", "NotGrafana"]


class GrafanaSetupError(EddieOtelError):
    """grafana-setup cannot go on; the message is one line for the operator."""


class NotGrafana(EddieOtelError):
    """An answer that is not the JSON object Grafana's API sends."""


class GrafanaHttpError(EddieOtelError):
    """Grafana answered with an error status; `response` is its decoded body, credentials already hidden."""

    def __init__(self, status_code: int, response: Any) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.response = response


class GrafanaUnreachable(EddieOtelError):
    """No HTTP answer came back; the message is the reason, in a few words."""
