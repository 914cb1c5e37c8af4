"""Settings: explicit arguments, then environment variables, then defaults, in one frozen object.

Each setting has one `Option`: the variable it is read from, how its text is read,
and one check that both an argument and a value read from the environment pass.
The recording settings live here; the metrics service's own (token, CORS origins,
body limit) live with the service, built by the same `load_options`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from eddie_otel import environment as env
from eddie_otel.errors import ConfigurationError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EXPORTERS",
    "MAX_PORT",
    "MIN_PORT",
    "TRACE_EXPORTERS",
    "Option",
    "Settings",
    "integer",
    "load_options",
    "number",
    "origins",
    "text",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8503
# Every port a listener may be given; 0 asks the system for a free one.
MIN_PORT, MAX_PORT = 0, 65535
EXPORTERS = ("prometheus", "otlp", "console", "none")
TRACE_EXPORTERS = ("otlp", "console", "none")
# The OTLP protocols an exporter can be chosen for (http/json has no exporter in OpenTelemetry Python).
OTLP_PROTOCOLS = ("http/protobuf", "grpc")
# OTEL_METRICS_EXEMPLAR_FILTER: which measurements may carry an exemplar (trace_based: those in a sampled span).
EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")


@dataclass(frozen=True)
class Option:
    """How one setting is read: its variable, how its text becomes a value, and the check every value passes.

    `read(name, text)` turns the variable's text into a value; `check(name, value)` validates
    (and normalises) a value whether it came from an argument or from `read`. Both name
    `name` in their errors: the variable for the environment, the argument otherwise.
    """

    variable: str
    read: Callable[[str, str], Any]
    check: Callable[[str, Any], Any]


S = TypeVar("S")


def load_options(
    cls: type[S], options: Mapping[str, Option], environ: Mapping[str, str] | None, arguments: Mapping[str, Any]
) -> S:
    """An instance of the dataclass `cls` from `arguments` (None: not given), then `environ`, then defaults."""
    environment = os.environ if environ is None else environ
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise ConfigurationError(f"unknown setting {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is None:
            continue
        option = options.get(name)
        values[name] = option.check(name, value) if option is not None else value
    for name, option in options.items():
        if name in values or not option.variable:
            continue
        raw = environment.get(option.variable, "").strip()
        if raw:
            values[name] = option.check(option.variable, option.read(option.variable, raw))
    return cls(**values)


# ---------------------------------------------------------------- readers and checks


def _as_is(name: str, value: Any) -> Any:
    return value


def integer(variable: str, low: int, high: int | None = None) -> Option:
    """An integer setting in [low, high] (no upper bound when `high` is None)."""
    bound = f"between {low} and {high}" if high is not None else f"at least {low}"

    def within(value: int) -> bool:
        return low <= value and (high is None or value <= high)

    def read(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be an integer, not {raw!r}") from None
        if not within(value):
            raise ConfigurationError(f"{name} must be {bound}, not {value}")
        return value

    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not within(value):
            raise ConfigurationError(f"{name} must be an integer {bound}, not {value!r}")
        return value

    return Option(variable, read, check)


def number(variable: str, low: float, high: float) -> Option:
    """A finite decimal setting in [low, high]."""

    def within(value: float) -> bool:
        return math.isfinite(value) and low <= value <= high

    def read(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number, not {raw!r}") from None
        if not within(value):
            raise ConfigurationError(f"{name} must be a number from {low:g} to {high:g}, not {raw}")
        return value

    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not within(float(value)):
            raise ConfigurationError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
        return float(value)

    return Option(variable, read, check)


def _read_bool(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be true or false, not {value!r}")
    return value


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _check_exporters(name: str, value: Any, known: tuple[str, ...] = EXPORTERS) -> tuple[str, ...]:
    given = _split(value) if isinstance(value, str) else tuple(value)
    names = tuple(dict.fromkeys(str(part).strip().lower() for part in given))
    for exporter in names:
        if exporter not in known:
            raise ConfigurationError(f"{name} names an unknown exporter {exporter!r}; choose from {', '.join(known)}")
    if "none" in names:
        if len(names) > 1:
            raise ConfigurationError(f"{name}: 'none' cannot be combined with other exporters")
        return ()
    return names


def _check_trace_exporters(name: str, value: Any) -> tuple[str, ...]:
    return _check_exporters(name, value, TRACE_EXPORTERS)


def choice(variable: str, choices: tuple[str, ...]) -> Option:
    """A setting that is one of `choices` (case-insensitive)."""

    def check(name: str, value: Any) -> str:
        chosen = str(value).strip().lower() if isinstance(value, str) else value
        if chosen not in choices:
            raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        return str(chosen)

    return Option(variable, _as_is, check)


def _read_resource_attributes(name: str, raw: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in raw.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"{name} must be a list of key=value pairs, got {pair.strip()!r}")
        attributes[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return attributes


def _check_resource_attributes(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a mapping of strings, not {type(value).__name__}")
    return {str(key): str(item) for key, item in value.items()}


def _check_host(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(ch.isspace() for ch in value) or "/" in value:
        raise ConfigurationError(f"{name} must be a host name or IP address, not {value!r}")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not all(part and (part.isalnum() or "-" in part) for part in value.split(".")):
            raise ConfigurationError(f"{name} must be a host name or IP address, not {value!r}") from None
    return value


def _check_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, not {value!r}")
    return value


def text(variable: str) -> Option:
    """A free-text setting (a token, a name): any non-empty string."""
    return Option(variable, _as_is, _check_name)


def _check_prices_file(name: str, value: Any) -> str:
    """A price table's path, read now: a bad file is an error naming `name` and the line, at configure time."""
    from eddie_otel.prices import load

    path = _check_name(name, value)
    load(path, name)
    return path


def _check_origins(name: str, value: Any) -> tuple[str, ...]:
    given = _split(value) if isinstance(value, str) else tuple(value)
    for origin in given:
        if origin != "*" and not str(origin).startswith(("http://", "https://")):
            raise ConfigurationError(f"{name} must list origins like https://example.com, not {origin!r}")
    return tuple(given)


def origins(variable: str) -> Option:
    """A comma-separated list of CORS origins (or `*`)."""
    return Option(variable, _as_is, _check_origins)


@dataclass(frozen=True)
class Settings:
    """What the recording side of eddie-otel can be told; build it with `Settings.load()`."""

    service_name: str = "eddie"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    exporters: tuple[str, ...] = ("prometheus",)
    # Span exporters of the TracerProvider built when none is installed; none: no spans.
    trace_exporters: tuple[str, ...] = ()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Whether to open the agent endpoint; None: yes, unless eddie borrows a MeterProvider.
    serve: bool | None = None
    sdk_disabled: bool = False
    export_interval_millis: int = 60_000
    otlp_protocol: str = "http/protobuf"
    # The metrics' own protocol variable, which wins over OTEL_EXPORTER_OTLP_PROTOCOL (None: not set).
    otlp_metrics_protocol: str | None = None
    otlp_traces_protocol: str | None = None
    exemplar_filter: str = "trace_based"
    max_fallback_depth: int = 3
    max_label_values: int = 100
    # Label combinations kept per metric. The per-label cap alone lets combinations multiply
    # (100 agents x 100 stages x 100 reasons). 2 000 is the OpenTelemetry SDK's default limit,
    # the one its users know; a counter at it renders in tens of milliseconds, a histogram
    # (21 lines a series) in under a second: the README's Limits section has the numbers.
    max_series_per_metric: int = 2000
    # Gauge series not updated for this long are dropped (0: never).
    series_ttl_seconds: int = 0
    # Where a serving process announces its endpoint for Prometheus file_sd (None: nowhere).
    discovery_dir: str | None = None
    # The host announced there, when not the bound one.
    advertise_host: str | None = None
    # The longest shutdown() and exit wait for the providers eddie built to flush to their
    # exporters; a dead endpoint must not hold a container past its stop grace period (10 s).
    shutdown_timeout_seconds: int = 3
    # The price table of model usage recorded without a cost (None: none; such usage records tokens only).
    prices_file: str | None = None

    # The recommended timeout of a stage (eddie_otel.timeouts): none before this many successful
    # durations; then the p99 of the last 1 000 times the margin, never below the slowest of them,
    # within [min, max] seconds.
    timeout_min_samples: int = 50
    timeout_margin: float = 1.5
    timeout_min_seconds: float = 1.0
    timeout_max_seconds: float = 86_400.0

    def __post_init__(self) -> None:
        if self.timeout_min_seconds > self.timeout_max_seconds:
            raise ConfigurationError(
                f"{env.EDDIE_OTEL_TIMEOUT_MIN_SECONDS} ({self.timeout_min_seconds:g}) must not be above "
                f"{env.EDDIE_OTEL_TIMEOUT_MAX_SECONDS} ({self.timeout_max_seconds:g})"
            )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **arguments: Any) -> Settings:
        """Settings from `arguments` (None means "not given"), then `environ`, then defaults."""
        return load_options(cls, _OPTIONS, environ, arguments)

    @property
    def prometheus_enabled(self) -> bool:
        """Whether the Prometheus reader is wanted."""
        return "prometheus" in self.exporters

    @property
    def metrics_protocol(self) -> str:
        """The OTLP protocol of the metric exporter: the metrics' variable, else the general one."""
        return self.otlp_metrics_protocol or self.otlp_protocol

    @property
    def traces_protocol(self) -> str:
        """The OTLP protocol of the span exporter: the traces' variable, else the general one."""
        return self.otlp_traces_protocol or self.otlp_protocol


_OPTIONS: dict[str, Option] = {
    "service_name": text(env.OTEL_SERVICE_NAME),
    "resource_attributes": Option(env.OTEL_RESOURCE_ATTRIBUTES, _read_resource_attributes, _check_resource_attributes),
    "exporters": Option(env.OTEL_METRICS_EXPORTER, _as_is, _check_exporters),
    "trace_exporters": Option(env.OTEL_TRACES_EXPORTER, _as_is, _check_trace_exporters),
    "host": Option(env.OTEL_EXPORTER_PROMETHEUS_HOST, _as_is, _check_host),
    "port": integer(env.OTEL_EXPORTER_PROMETHEUS_PORT, MIN_PORT, MAX_PORT),
    "serve": Option("", _read_bool, _check_bool),  # an argument only: no variable
    "sdk_disabled": Option(env.OTEL_SDK_DISABLED, _read_bool, _check_bool),
    "export_interval_millis": integer(env.OTEL_METRIC_EXPORT_INTERVAL, 1),
    "otlp_protocol": choice(env.OTEL_EXPORTER_OTLP_PROTOCOL, OTLP_PROTOCOLS),
    "otlp_metrics_protocol": choice(env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, OTLP_PROTOCOLS),
    "otlp_traces_protocol": choice(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTLP_PROTOCOLS),
    "exemplar_filter": choice(env.OTEL_METRICS_EXEMPLAR_FILTER, EXEMPLAR_FILTERS),
    "max_fallback_depth": integer(env.EDDIE_OTEL_MAX_FALLBACK_DEPTH, 0, 100),
    "max_label_values": integer(env.EDDIE_OTEL_MAX_LABEL_VALUES, 1, 10_000),
    "max_series_per_metric": integer(env.EDDIE_OTEL_MAX_SERIES_PER_METRIC, 1, 1_000_000),
    "series_ttl_seconds": integer(env.EDDIE_OTEL_SERIES_TTL_SECONDS, 0, 10 * 365 * 86400),
    "discovery_dir": text(env.EDDIE_OTEL_DISCOVERY_DIR),
    "advertise_host": Option(env.EDDIE_OTEL_ADVERTISE_HOST, _as_is, _check_host),
    "shutdown_timeout_seconds": integer(env.EDDIE_OTEL_SHUTDOWN_TIMEOUT_SECONDS, 1, 600),
    # At most the 1 000 durations the recommendation is computed from.
    "timeout_min_samples": integer(env.EDDIE_OTEL_TIMEOUT_MIN_SAMPLES, 1, 1000),
    "timeout_margin": number(env.EDDIE_OTEL_TIMEOUT_MARGIN, 1.0, 100.0),
    "timeout_min_seconds": number(env.EDDIE_OTEL_TIMEOUT_MIN_SECONDS, 0.001, 604_800.0),
    "timeout_max_seconds": number(env.EDDIE_OTEL_TIMEOUT_MAX_SECONDS, 0.001, 604_800.0),
    "prices_file": Option(env.EDDIE_OTEL_PRICES_FILE, _as_is, _check_prices_file),
}
