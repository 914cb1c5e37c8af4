"""The exception root of eddie-otel and its subclasses."""

from __future__ import annotations

__all__ = ["ConfigurationError", "EddieOtelError"]


class EddieOtelError(Exception):
    """Base class of every error eddie-otel raises on purpose."""


class ConfigurationError(EddieOtelError, ValueError):
    """A setting (argument or environment variable) has an invalid value; the message names it."""
