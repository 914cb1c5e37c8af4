"""Credentials in the URLs the ops commands are given: used for requests, never shown.

A URL such as `http://admin:secret@grafana:3000` carries a user and password.
`Located` splits it into the bare URL (the one requests go to and messages show)
and the HTTP Basic credential; `redactor` hides every form a secret can take on
screen: as typed, as `user:password`, and base64-encoded in a Basic header.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "Located", "basic_authorization", "redactor", "shown", "url_redactor"]

REDACTED = "<redacted>"

# Whatever follows an Authorization header name, in a header dump, a JSON body or a query string.
_AUTHORIZATION = re.compile(r"""(?i)(authorization["']?\s*[:=]\s*["']?)(?:(basic|bearer)\s+)?[^\s"',;&)\]}]+""")


def basic_authorization(username: str, password: str) -> str:
    """The value of an `Authorization` header for HTTP Basic authentication."""
    pair = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _forms(secret: str) -> list[str]:
    """`secret` and its base64 encodings that may show up in a text, longest first."""
    encoded = base64.b64encode(secret.encode()).decode("ascii")
    return [encoded, encoded.rstrip("="), secret]


def redactor(secrets: Iterable[str | None]) -> Callable[[str], str]:
    """A function that replaces every non-empty secret, plain or base64-encoded, and any Authorization value."""
    hidden = sorted({form for secret in secrets if secret for form in _forms(secret)}, key=len, reverse=True)

    def redact(text: str) -> str:
        for form in hidden:
            text = text.replace(form, REDACTED)
        return _AUTHORIZATION.sub(lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{REDACTED}", text)

    return redact


def url_redactor(urls: Iterable[str | None], others: Iterable[str | None] = ()) -> Callable[[str], str]:
    """`redactor` of every secret the user info of `urls` carries, and of `others` (an API key, a token)."""
    found = [secret for url in urls if url for secret in Located.parse(url).secrets()]
    return redactor([*found, *others])


def shown(url: str) -> str:
    """`url` without user:password and without a trailing slash, for messages."""
    return Located.parse(url).url.rstrip("/")


@dataclass(frozen=True)
class Located:
    """A URL split into where it points (no user info) and the user and password it carried."""

    url: str
    username: str | None = None
    password: str | None = None
    userinfo: str | None = None  # as typed, percent-encoding included

    @classmethod
    def parse(cls, raw: str) -> Located:
        """Split `raw`; a URL that cannot be parsed loses everything up to its last "@" but the scheme."""
        try:
            parts = urlsplit(raw)
            username, password = parts.username, parts.password
        except ValueError:
            return cls._cut(raw)
        if not parts.netloc:
            # Not a URL with a host ("admin:secret@host" lacks the "//"); it will be refused, but not shown whole.
            return cls._cut(raw)
        if "@" not in parts.netloc:
            return cls(raw)
        userinfo, _, netloc = parts.netloc.rpartition("@")
        bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return cls(
            bare,
            unquote(username) if username is not None else None,
            unquote(password) if password is not None else None,
            userinfo,
        )

    @classmethod
    def _cut(cls, raw: str) -> Located:
        scheme, separator, rest = raw.rpartition("://")
        if "@" not in rest:
            return cls(raw)
        userinfo, _, host = rest.rpartition("@")
        return cls(f"{scheme}{separator}{host}", userinfo=userinfo)

    @property
    def authorization(self) -> str | None:
        """The Basic `Authorization` header value for the user and password, when the URL had them."""
        if self.username is None:
            return None
        return basic_authorization(self.username, self.password or "")

    def secrets(self) -> list[str]:
        """What must not be shown: the password, `user:password` and the raw (percent-encoded) forms."""
        found = [self.userinfo] if self.userinfo else []
        if self.userinfo and ":" in self.userinfo:
            found.append(self.userinfo.split(":", 1)[1])
        if self.username is not None:
            found.append(f"{self.username}:{self.password or ''}")
        if self.password:
            found.append(self.password)
        return [secret for secret in found if secret]
