"""The URLs grafana-setup is given: checked, shown without credentials, and secrets kept off the screen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from eddie_otel.ops.grafana.errors import GrafanaSetupError

__all__ = ["REDACTED", "http_url", "password", "redactor", "shown"]

REDACTED = "<redacted>"


def redactor(secrets: Sequence[str]) -> Callable[[str], str]:
    """A function that replaces every non-empty one of `secrets` in a text with `<redacted>`."""
    hidden = [secret for secret in secrets if secret]

    def redact(text: str) -> str:
        for secret in hidden:
            text = text.replace(secret, REDACTED)
        return text

    return redact


def http_url(flag: str, raw: str) -> str:
    """`raw`, stripped, when it is an http(s) URL with a host and a valid port; else an error naming `flag`."""
    try:
        parts = urlsplit(raw.strip())
    except ValueError:  # an unbalanced IPv6 bracket
        raise GrafanaSetupError(f"{flag} is not a valid URL: {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaSetupError(f"{flag} must be an http:// or https:// URL with a host, not {raw!r}")
    try:
        parts.port  # noqa: B018 - urlsplit only checks the port when it is read
    except ValueError:
        raise GrafanaSetupError(f"{flag} has an invalid port: {raw!r}") from None
    return raw.strip()


def password(url: str) -> str | None:
    """The password in `url`, if any."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def shown(url: str) -> str:
    """`url` without user:password, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip("/")
