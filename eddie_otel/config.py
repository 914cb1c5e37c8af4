"""Settings: explicit arguments, then environment variables, then defaults, in one frozen object."""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from eddie_otel.errors import ConfigurationError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EXPORTERS",
    "MAX_PORT",
    "MIN_PORT",
    "Settings",
]

# Standard OpenTelemetry variables.
OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
OTEL_EXPORTER_PROMETHEUS_HOST = "OTEL_EXPORTER_PROMETHEUS_HOST"
OTEL_EXPORTER_PROMETHEUS_PORT = "OTEL_EXPORTER_PROMETHEUS_PORT"
OTEL_METRIC_EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
# Own variables.
EDDIE_OTEL_MAX_FALLBACK_DEPTH = "EDDIE_OTEL_MAX_FALLBACK_DEPTH"
EDDIE_OTEL_MAX_LABEL_VALUES = "EDDIE_OTEL_MAX_LABEL_VALUES"
EDDIE_OTEL_WEBHOOK_TOKEN = "EDDIE_OTEL_WEBHOOK_TOKEN"
EDDIE_OTEL_CORS_ORIGINS = "EDDIE_OTEL_CORS_ORIGINS"
EDDIE_OTEL_MAX_BODY_BYTES = "EDDIE_OTEL_MAX_BODY_BYTES"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8503
# Every port a listener may be given; 0 asks the system for a free one.
MIN_PORT, MAX_PORT = 0, 65535
EXPORTERS = ("prometheus", "otlp", "console", "none")


@dataclass(frozen=True)
class Settings:
    """Everything eddie-otel can be told; build it with `Settings.load()`."""

    service_name: str = "eddie"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    exporters: tuple[str, ...] = ("prometheus",)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    serve: bool = True
    sdk_disabled: bool = False
    export_interval_millis: int = 60_000
    max_fallback_depth: int = 3
    max_label_values: int = 100
    webhook_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **arguments: Any) -> Settings:
        """Settings from `arguments` (None means "not given"), then `environ`, then defaults."""
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ConfigurationError(f"unknown setting {unknown[0]!r}")
        given = {name: value for name, value in arguments.items() if value is not None}
        values: dict[str, Any] = {}
        for name, (variable, parse) in _FROM_ENV.items():
            if name in given:
                values[name] = _check_argument(name, given.pop(name))
            else:
                raw = env.get(variable, "").strip()
                if raw:
                    values[name] = parse(variable, raw)
        values.update(given)
        return cls(**values)

    @property
    def prometheus_enabled(self) -> bool:
        """Whether the Prometheus reader is wanted."""
        return "prometheus" in self.exporters


def _parse_bool(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{variable} must be true or false, not {raw!r}")


def _int_parser(low: int, high: int | None = None) -> Any:
    def parse(variable: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{variable} must be an integer, not {raw!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigurationError(f"{variable} must be {bound}, not {value}")
        return value

    return parse


def _parse_exporters(variable: str, raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    for name in names:
        if name not in EXPORTERS:
            raise ConfigurationError(
                f"{variable} names an unknown exporter {name!r}; choose from {', '.join(EXPORTERS)}"
            )
    if "none" in names:
        if len(names) > 1:
            raise ConfigurationError(f"{variable}: 'none' cannot be combined with other exporters")
        return ()
    return names


def _parse_resource_attributes(variable: str, raw: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"{variable} must be a list of key=value pairs, got {pair.strip()!r}")
        attributes[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return attributes


def _parse_host(variable: str, raw: str) -> str:
    if any(ch.isspace() for ch in raw) or "/" in raw:
        raise ConfigurationError(f"{variable} must be a host name or IP address, not {raw!r}")
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not all(part and (part.isalnum() or "-" in part) for part in raw.split(".")):
            raise ConfigurationError(f"{variable} must be a host name or IP address, not {raw!r}") from None
    return raw


def _parse_str(variable: str, raw: str) -> str:
    return raw


def _parse_origins(variable: str, raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip() for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigurationError(f"{variable} must list origins like https://example.com, not {origin!r}")
    return origins


_FROM_ENV: dict[str, tuple[str, Any]] = {
    "service_name": (OTEL_SERVICE_NAME, _parse_str),
    "resource_attributes": (OTEL_RESOURCE_ATTRIBUTES, _parse_resource_attributes),
    "exporters": (OTEL_METRICS_EXPORTER, _parse_exporters),
    "host": (OTEL_EXPORTER_PROMETHEUS_HOST, _parse_host),
    "port": (OTEL_EXPORTER_PROMETHEUS_PORT, _int_parser(MIN_PORT, MAX_PORT)),
    "sdk_disabled": (OTEL_SDK_DISABLED, _parse_bool),
    "export_interval_millis": (OTEL_METRIC_EXPORT_INTERVAL, _int_parser(1)),
    "max_fallback_depth": (EDDIE_OTEL_MAX_FALLBACK_DEPTH, _int_parser(0, 100)),
    "max_label_values": (EDDIE_OTEL_MAX_LABEL_VALUES, _int_parser(1, 10_000)),
    "webhook_token": (EDDIE_OTEL_WEBHOOK_TOKEN, _parse_str),
    "cors_origins": (EDDIE_OTEL_CORS_ORIGINS, _parse_origins),
    "max_body_bytes": (EDDIE_OTEL_MAX_BODY_BYTES, _int_parser(64)),
}

_ARGUMENT_RANGES: dict[str, tuple[int, int]] = {
    "port": (MIN_PORT, MAX_PORT),
    "export_interval_millis": (1, 2**31),
    "max_fallback_depth": (0, 100),
    "max_label_values": (1, 10_000),
    "max_body_bytes": (64, 2**31),
}


def _check_argument(name: str, value: Any) -> Any:
    if name in _ARGUMENT_RANGES:
        low, high = _ARGUMENT_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigurationError(f"{name} must be an integer between {low} and {high}, not {value!r}")
    elif name == "exporters":
        text = value if isinstance(value, str) else ",".join(value)
        return _parse_exporters(name, text) if text else ()
    elif name == "service_name" and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"service_name must be a non-empty string, not {value!r}")
    elif name == "resource_attributes":
        return dict(value)
    elif name == "cors_origins":
        return _parse_origins(name, value if isinstance(value, str) else ",".join(value))
    return value
