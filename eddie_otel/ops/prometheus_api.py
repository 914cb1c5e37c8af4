"""Talking to Prometheus' HTTP API with the standard library: URLs checked first, every failure one line.

`fleet` (the fleet summary) and `doctor` share it. A user and password in a URL
authenticate its requests (HTTP Basic) and never appear in a message: every error
raised by `PrometheusAPI` goes through the redactor of `eddie_otel.ops.credentials`,
so a server that echoes the request's Authorization header back cannot show it.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from eddie_otel.errors import ConfigurationError, EddieOtelError
from eddie_otel.ops.credentials import Located, redactor

__all__ = [
    "TIMEOUT_SECONDS",
    "PrometheusAPI",
    "PrometheusError",
    "Unreachable",
    "Vector",
    "http_get",
    "parse_url",
]

TIMEOUT_SECONDS = 5.0

# An instant vector: each series' labels and value.
Vector = list[tuple[dict[str, str], float]]


class PrometheusError(EddieOtelError):
    """Prometheus answered, but not with what was asked for; the message is one line."""


class Unreachable(EddieOtelError):
    """Nothing answered at the URL (refused, timed out, not resolvable); the message is one line.

    `reason` is why, without the URL.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def parse_url(raw: str, what: str) -> Located:
    """`raw` as an http(s) URL with a host (user info split off); ConfigurationError naming `what` otherwise."""
    located = Located.parse(raw)
    try:
        parts = urllib.parse.urlsplit(located.url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not a valid URL ({located.url!r}: {exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an http:// or https:// URL with a host, not {located.url!r}")
    del port
    return located


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the Authorization header to wherever it points; report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http_get(url: str, authorization: str | None = None, timeout: float = TIMEOUT_SECONDS) -> tuple[int, bytes]:
    """GET `url` (no user info in it), with an `Authorization` value when given: (status, body)."""
    headers = {"Authorization": authorization} if authorization else {}
    opener = urllib.request.build_opener(_NoRedirect) if authorization else urllib.request.build_opener()
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = " ".join(str(getattr(error, "reason", error)).split())
        raise Unreachable(f"cannot reach {url}: {reason}", reason) from None


def _value(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


# What a base URL may end with by mistake: the API's own prefix, which every request adds.
_API_PREFIX = "/api/v1"


class PrometheusAPI:
    """Prometheus' HTTP API at `url` (its base URL; a user and password in it authenticate).

    A base URL given with the API's prefix (`http://prometheus:9090/api/v1`) is taken without it.
    """

    def __init__(self, url: str | Located, timeout: float = TIMEOUT_SECONDS) -> None:
        self._located = url if isinstance(url, Located) else parse_url(url, "the Prometheus URL")
        base = self._located.url.rstrip("/")
        self.url = base.removesuffix(_API_PREFIX).rstrip("/") if base.endswith(_API_PREFIX) else base
        self._timeout = timeout
        self._redact = redactor(self._located.secrets())

    def get(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> with `params`: the answer's `data`."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            status, body = http_get(url, self._located.authorization, self._timeout)
        except Unreachable as exc:
            # Not the request's URL: the PromQL, URL-encoded, says nothing about why nothing answered.
            reason = self._redact(exc.reason)
            raise Unreachable(f"cannot reach Prometheus at {self._redact(self.url)}: {reason}", reason) from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise PrometheusError(
                f"{self.url}/api/v1/{path} answered HTTP {status}, not JSON; is {self.url} a Prometheus server?"
            ) from None
        if status != 200 or not isinstance(answer, dict) or answer.get("status") != "success":
            error = answer.get("error") if isinstance(answer, dict) else None
            # Prometheus (or a proxy before it) may echo the request, Authorization header included.
            shown = " ".join(str(error).split())[:500] if error else ""
            message = f"{self.url}/api/v1/{path} answered HTTP {status}" + (f": {shown}" if shown else "")
            raise PrometheusError(self._redact(message))
        return answer.get("data")

    def query(self, expr: str) -> Vector:
        """The instant vector `expr` gives now; NaN where Prometheus answers NaN."""
        data = self.get("query", query=expr) or {}
        if data.get("resultType") == "scalar":
            return [({}, _value(data["result"][1]))]
        return [
            (dict(item.get("metric", {})), _value(item.get("value", (0, None))[1])) for item in data.get("result", [])
        ]
