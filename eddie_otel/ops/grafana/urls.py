"""The URLs grafana-setup is given: checked, shown without credentials, and secrets kept off the screen."""

from __future__ import annotations

from urllib.parse import urlsplit

from eddie_otel.ops.credentials import REDACTED, Located, redactor, shown
from eddie_otel.ops.grafana.errors import GrafanaSetupError

__all__ = ["REDACTED", "http_url", "password", "redactor", "shown"]


def http_url(flag: str, raw: str) -> str:
    """`raw`, stripped, when it is an http(s) URL with a host and a valid port; else an error naming `flag`.

    The errors show the URL without its user info.
    """
    raw = raw.strip()
    try:
        parts = urlsplit(raw)
    except ValueError:  # an unbalanced IPv6 bracket
        raise GrafanaSetupError(f"{flag} is not a valid URL: {shown(raw)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaSetupError(f"{flag} must be an http:// or https:// URL with a host, not {shown(raw)!r}")
    try:
        parts.port  # noqa: B018 - urlsplit only checks the port when it is read
    except ValueError:
        raise GrafanaSetupError(f"{flag} has an invalid port: {shown(raw)!r}") from None
    return raw


def password(url: str) -> str | None:
    """The password in `url`, if any."""
    return Located.parse(url).password
