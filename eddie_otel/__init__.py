"""OpenTelemetry instrumentation for the Eddie distributed-fallback agent system."""

from eddie_otel._version import __version__
from eddie_otel.api import (
    chunk,
    forget_agent,
    forget_container,
    recommended_timeout,
    record_chunk,
    record_docker_allocation,
    record_elastic_adjustment,
    record_merge,
    record_split,
    record_task,
    record_timeout,
    record_usage,
    set_agent_capacity,
    set_timeout,
    summary,
    task,
    watch_docker,
)
from eddie_otel.catalogue import METRICS, Kind, Metric
from eddie_otel.config import Settings
from eddie_otel.errors import ConfigurationError, EddieOtelError
from eddie_otel.recording import Recorder
from eddie_otel.runtime import Runtime, configure, reset, shutdown
from eddie_otel.tracing import carrier, propagate

__all__ = [
    "METRICS",
    "ConfigurationError",
    "EddieOtelError",
    "Kind",
    "Metric",
    "Recorder",
    "Runtime",
    "Settings",
    "__version__",
    "carrier",
    "chunk",
    "configure",
    "forget_agent",
    "forget_container",
    "propagate",
    "recommended_timeout",
    "record_chunk",
    "record_docker_allocation",
    "record_elastic_adjustment",
    "record_merge",
    "record_split",
    "record_task",
    "record_timeout",
    "record_usage",
    "reset",
    "set_agent_capacity",
    "set_timeout",
    "shutdown",
    "summary",
    "task",
    "watch_docker",
]
