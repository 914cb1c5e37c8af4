"""The metrics service's own settings: the webhook token, CORS origins, the body limit and the allowed Hosts.

They live apart from the recording settings, so that changing the token rebuilds
the app, never the MeterProvider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eddie_otel import environment as env
from eddie_otel.config import Option, integer, load_options, origins
from eddie_otel.errors import ConfigurationError
from eddie_otel.ops.prometheus_api import parse_url

__all__ = ["ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """What the metrics service can be told beyond the recording settings; build it with `ServiceSettings.load()`."""

    webhook_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    # 1 MiB: a batch of several thousand events, far from what one webhook call needs.
    max_body_bytes: int = 1_048_576
    # Host header names accepted besides the loopback ones (ports ignored); `*` accepts any.
    allowed_hosts: tuple[str, ...] = ()
    # The Prometheus scraping the fleet, for GET /metrics/summary?scope=fleet; its user info is a secret.
    prometheus_url: str | None = field(default=None, repr=False)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **arguments: Any) -> ServiceSettings:
        """Service settings from `arguments` (None means "not given"), then `environ`, then defaults.

        EDDIE_OTEL_WEBHOOK_TOKEN set to nothing or only spaces is a ConfigurationError, not "no token":
        it must never turn authentication off by accident.
        """
        environment = os.environ if environ is None else environ
        variable = env.EDDIE_OTEL_WEBHOOK_TOKEN
        if arguments.get("webhook_token") is None and variable in environment:
            _check_token(variable, environment[variable])
        return load_options(cls, _OPTIONS, environment, arguments)


def _check_hosts(name: str, value: Any) -> tuple[str, ...]:
    given = value.split(",") if isinstance(value, str) else list(value)
    hosts = []
    for host in given:
        host = str(host).strip().lower().rstrip(".")
        if not host:
            continue
        if any(ch.isspace() or ch in "/@?#" for ch in host):
            raise ConfigurationError(f"{name} must list host names like metrics.example.com, not {host!r}")
        hosts.append(host)
    return tuple(dict.fromkeys(hosts))


def _check_token(name: str, value: Any) -> str:
    # An empty token would silently turn authentication off: a set variable must hold a real token.
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} is set but empty; give a token, or unset it to accept unauthenticated events")
    return value


def _check_url(name: str, value: Any) -> str:
    url = str(value).strip()
    parse_url(url, name)
    return url


_OPTIONS: dict[str, Option] = {
    "webhook_token": Option(env.EDDIE_OTEL_WEBHOOK_TOKEN, lambda name, raw: raw, _check_token),
    "cors_origins": origins(env.EDDIE_OTEL_CORS_ORIGINS),
    "max_body_bytes": integer(env.EDDIE_OTEL_MAX_BODY_BYTES, 64, 2**31),
    "allowed_hosts": Option(env.EDDIE_OTEL_ALLOWED_HOSTS, lambda name, raw: raw, _check_hosts),
    "prometheus_url": Option(env.EDDIE_OTEL_PROMETHEUS_URL, lambda name, raw: raw, _check_url),
}
