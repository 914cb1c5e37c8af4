"""The shape of the summary as TypedDicts, until eddie_otel.summary defines them itself."""

from __future__ import annotations

from typing_extensions import TypedDict

__all__ = ["AgentLoad", "Indicator", "Latency", "Summary", "Target", "Window"]


class AgentLoad(TypedDict):
    """Tasks and chunks running now and finished so far on one agent."""

    active: float
    executed: float


class Latency(TypedDict):
    """Nearest-rank percentiles of a stage's recent task durations, in seconds."""

    samples: int
    p50: float
    p95: float
    p99: float


class Window(TypedDict):
    """Counter increases over a window, and the same per second."""

    seconds: int
    counts: dict[str, float]
    rates: dict[str, float]


class Target(TypedDict):
    """An indicator's target: `value op target.value` must hold."""

    op: str
    value: float


class Indicator(TypedDict):
    """A success indicator; value and ok are null while there is no data."""

    name: str
    value: float | None
    target: Target
    ok: bool | None


class Summary(TypedDict):
    """The summary of GET /metrics/summary, the same dict as eddie_otel.summary()."""

    totals: dict[str, float]
    agents: dict[str, AgentLoad]
    latency: dict[str, Latency]
    windows: dict[str, Window]
    indicators: list[Indicator]
