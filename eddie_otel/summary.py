"""The JSON summary and the success indicators, computed from the exact series and the history.

`summary()` returns the dict that GET /metrics/summary answers; every key below is always there
(`Summary`, whose keys are all required), and the fleet summary (`eddie_otel.ops.fleet`, computed
with PromQL) has the same ones, each with the fleet's meaning said there:

- `generated_at`: when the summary was computed, an RFC 3339 UTC timestamp
  (`2026-01-31T12:00:00.000Z`), so a reader can tell a stale copy from a fresh one.
- `totals`: one key per catalogue counter, without `_total`; 0 until something is counted.
- `agents`: per agent, the tasks and chunks running now (`active`) and finished so far (`executed`),
  the `capacity` it said it has (null when unknown), its `saturation` (`active` / `capacity`, null
  without a capacity) and `last_seen`, when anything was last recorded for it (Unix seconds, to
  within 10 s; null when never).
- `fallback`: since start, the tasks split at least once that finished (`split_tasks`), of which
  `rescued` (succeeded) and `failed`, the `rescue_ratio` rescued / (rescued + failed) (null with
  none), the seconds spent in chunks created by splits (`chunk_seconds`) and the model cost of the
  usage recorded in them (`cost_usd`).
- `latency`: per stage, p50/p95/p99 of the recent task durations (the history keeps the last
  `SAMPLE_SIZE` per stage) and the number of `samples` they come from. Percentiles use the
  nearest-rank method: the p-th percentile of n sorted durations is the ⌈p·n/100⌉-th smallest,
  always a duration that was actually observed.
- `windows`: `5m` and `1h`, each with its length in `seconds`, the time it actually covers in
  `covered_seconds` (its length, or less while the process is younger than the window), the
  increase of every counter over it (`counts`, exact to the history's 10-second bucket) and
  `rates`: the count divided by the covered time (at least one second), in events per second.
  A service up 6 s that counted 21 events reports 3.5 per second, not 21 / 300.
- `timeouts`: per stage with a timeout set (`eddie_otel.set_timeout`) or a successful task, the
  `timeout_seconds` in use (null when never set), the `recommended_seconds` of
  `eddie_otel.recommended_timeout` (null while fewer than EDDIE_OTEL_TIMEOUT_MIN_SAMPLES tasks
  succeeded), the number of successful durations it comes from (`samples`, at most 1 000), their
  nearest-rank `p99` (null with none), the `hit_share` since start (timeouts of the stage over its
  finished tasks; null with none finished) and `reason`: "too tight" (hit share above 5 %), "too
  loose" (p99 below a third of the timeout), "ok", or "not enough data".
- `indicators`: a list of `{name, window, value, target, ok}`; `window` names the data judged
  (`1h`, `5m`, or `recent` for the last durations of each stage); `target` is
  `{"op": ">=", "value": 0.95}` (the comparison `value op target.value` must hold); `value` and
  `ok` are null while there is no data to judge.

The indicators, and the data each one uses:

- success_rate (`1h`): task_success / (task_success + task_failure) over the last hour; target ≥ 0.95.
- latency_p99_seconds (`recent`): the highest per-stage p99 of the recent durations, so the target
  holds only when every stage finishes 99% of its tasks in under a minute; target < 60.
- timeouts_per_hour (`1h`): timeout events counted in the last hour (not extrapolated while the
  process is younger than an hour); target < 5. Null when the hour saw no activity at all (no
  task or chunk finished and no timeout), since "no timeouts" then means nothing.
- merge_efficiency (`1h`): 1 - merge_deduplication / merge_chunks_combined over the last hour, the
  share of combined chunk results that were not duplicates: above 0.90 means overlapping chunks
  wasted less than a tenth of the work; target > 0.90.
- agent_balance_ratio (`5m`): tasks and chunks finished in the last 5 minutes by the busiest agent
  over the least busy one, among agents that finished any in that window; null with fewer than
  two; target < 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

from typing_extensions import Protocol, TypedDict

from eddie_otel.catalogue import (
    AGENT_ACTIVE_TASKS,
    AGENT_CAPACITY,
    AGENT_LAST_SEEN,
    AGENT_TASKS_EXECUTED,
    FALLBACK_CHUNK_SECONDS,
    FALLBACK_COST,
    METRICS,
    TASK_FALLBACK,
    Kind,
)
from eddie_otel.history import History
from eddie_otel.objectives import target
from eddie_otel.telemetry import Telemetry
from eddie_otel.timeouts import Policy, stage_timeouts

__all__ = [
    "WINDOWS",
    "AgentLoad",
    "Fallback",
    "Indicator",
    "Latency",
    "StageTimeout",
    "Summarised",
    "Summary",
    "Target",
    "Window",
    "agent_load",
    "fallback_summary",
    "generated_at",
    "indicator",
    "percentile",
    "summary",
    "whole",
]

# The windows of the summary: name and length in seconds.
WINDOWS: tuple[tuple[str, int], ...] = (("5m", 300), ("1h", 3600))


class AgentLoad(TypedDict):
    """Tasks and chunks running now and finished so far on one agent, its capacity, saturation and last sight."""

    active: float
    executed: float
    # Null when the agent never said its capacity; saturation is active / capacity (null without a capacity).
    capacity: float | None
    saturation: float | None
    # Unix seconds of the last record for the agent (to within 10 s); null when never.
    last_seen: float | None


class Fallback(TypedDict):
    """What the fallback achieved since start: split tasks rescued or failed, and the chunk time and cost spent."""

    split_tasks: float
    rescued: float
    failed: float
    rescue_ratio: float | None
    chunk_seconds: float
    cost_usd: float


class Latency(TypedDict):
    """Nearest-rank percentiles of a stage's recent task durations, in seconds."""

    samples: int
    p50: float
    p95: float
    p99: float


class StageTimeout(TypedDict):
    """A stage's timeout in use, this process's recommendation, and one word on the timeout."""

    timeout_seconds: float | None
    recommended_seconds: float | None
    samples: int
    p99: float | None
    hit_share: float | None
    reason: str


class Window(TypedDict):
    """Counter increases over a window, and the same per second of the time the window covers."""

    seconds: int
    covered_seconds: float
    counts: dict[str, float]
    rates: dict[str, float]


class Target(TypedDict):
    """An indicator's target: `value op target.value` must hold."""

    op: str
    value: float


class Indicator(TypedDict):
    """A success indicator over `window` (`1h`, `5m` or `recent`); value and ok are null while there is no data."""

    name: str
    window: str
    value: float | None
    target: Target
    ok: bool | None


class Summary(TypedDict):
    """The summary of GET /metrics/summary, the same dict as eddie_otel.summary()."""

    generated_at: str
    totals: dict[str, float]
    agents: dict[str, AgentLoad]
    fallback: Fallback
    latency: dict[str, Latency]
    timeouts: dict[str, StageTimeout]
    windows: dict[str, Window]
    indicators: list[Indicator]


_COUNTERS = tuple(metric for metric in METRICS if metric.kind is Kind.COUNTER)
_PERCENTILES = (("p50", 50), ("p95", 95), ("p99", 99))


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank `p`-th percentile (0 < p ≤ 100) of `values`, which must not be empty."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < p <= 100:
        raise ValueError(f"p must be in (0, 100], not {p}")
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered) / 100))
    return ordered[rank - 1]


class Summarised(Protocol):
    """What a summary reads: a runtime's telemetry (its store) and history."""

    telemetry: Telemetry
    history: History
    timeout_policy: Policy


def summary(runtime: Summarised) -> Summary:
    """The summary of `runtime`, the dict GET /metrics/summary answers (`eddie_otel.summary()`: the configured one)."""
    rt = runtime
    store = rt.telemetry.store
    history = rt.history

    totals = {metric.key: whole(store.of(metric).total()) for metric in _COUNTERS}

    active = {key[0]: value for key, value in store.of(AGENT_ACTIVE_TASKS).values().items()}
    executed = {key[0]: value for key, value in store.of(AGENT_TASKS_EXECUTED).values().items()}
    capacity = {key[0]: value for key, value in store.of(AGENT_CAPACITY).values().items()}
    seen = {key[0]: value for key, value in store.of(AGENT_LAST_SEEN).values().items()}
    agents: dict[str, AgentLoad] = {
        agent: agent_load(active.get(agent, 0), executed.get(agent, 0), capacity.get(agent), seen.get(agent))
        for agent in sorted(active.keys() | executed.keys() | capacity.keys() | seen.keys())
    }
    outcomes = store.of(TASK_FALLBACK).values()
    rescued = sum(value for key, value in outcomes.items() if key[1] == "rescued")
    failed = sum(value for key, value in outcomes.items() if key[1] == "failed")

    latency: dict[str, Latency] = {}
    for stage, durations in sorted(history.durations().items()):
        if durations:
            p50, p95, p99 = (percentile(durations, p) for _, p in _PERCENTILES)
            latency[stage] = {"samples": len(durations), "p50": p50, "p95": p95, "p99": p99}

    windows: dict[str, Window] = {}
    for name, seconds in WINDOWS:
        counts = history.window(seconds)
        covered = round(history.covered(seconds), 3)
        # At least a second: a burst in the first milliseconds is not a rate of thousands per second.
        divisor = max(covered, 1.0)
        windows[name] = {
            "seconds": seconds,
            "covered_seconds": whole(covered),
            "counts": {key: whole(value) for key, value in counts.items()},
            "rates": {key: value / divisor for key, value in counts.items()},
        }

    hour = history.window(3600)
    indicators = [
        indicator("success_rate", "1h", _ratio(hour["task_success"], hour["task_success"] + hour["task_failure"])),
        indicator("latency_p99_seconds", "recent", max((stage["p99"] for stage in latency.values()), default=None)),
        indicator("timeouts_per_hour", "1h", _timeouts(hour)),
        indicator("merge_efficiency", "1h", _efficiency(hour["merge_deduplication"], hour["merge_chunks_combined"])),
        indicator("agent_balance_ratio", "5m", _balance(history.agents(300).values())),
    ]
    return {
        "generated_at": generated_at(),
        "totals": totals,
        "agents": agents,
        "fallback": fallback_summary(
            rescued, failed, store.of(FALLBACK_CHUNK_SECONDS).total(), store.of(FALLBACK_COST).total()
        ),
        "latency": latency,
        "timeouts": stage_timeouts(rt),
        "windows": windows,
        "indicators": indicators,
    }


def agent_load(active: float, executed: float, capacity: float | None, last_seen: float | None) -> AgentLoad:
    """One agent's entry of `agents`: its load, capacity, saturation (null without a capacity) and last sight."""
    return {
        "active": whole(active),
        "executed": whole(executed),
        "capacity": None if capacity is None else whole(capacity),
        "saturation": active / capacity if capacity else None,
        "last_seen": None if last_seen is None else whole(round(last_seen, 3)),
    }


def fallback_summary(rescued: float, failed: float, chunk_seconds: float, cost_usd: float) -> Fallback:
    """The `fallback` entry: split tasks rescued and failed, their ratio (null with none), chunk time and cost."""
    return {
        "split_tasks": whole(rescued + failed),
        "rescued": whole(rescued),
        "failed": whole(failed),
        "rescue_ratio": _ratio(rescued, rescued + failed),
        "chunk_seconds": whole(chunk_seconds),
        "cost_usd": whole(cost_usd),
    }


def generated_at() -> str:
    """Now as an RFC 3339 UTC timestamp with milliseconds: 2026-01-31T12:00:00.000Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def whole(value: float) -> int | float:
    """`value` as JSON should show a count: 3, not 3.0."""
    return int(value) if float(value).is_integer() else value


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _efficiency(duplicates: float, combined: float) -> float | None:
    return 1 - duplicates / combined if combined > 0 else None


def _timeouts(hour: Mapping[str, float]) -> int | float | None:
    activity = hour["task_success"] + hour["task_failure"] + hour["agent_tasks_executed"] + hour["timeout_events"]
    return whole(hour["timeout_events"]) if activity > 0 else None


def _balance(executions: Iterable[float]) -> float | None:
    counts = list(executions)
    if len(counts) < 2:
        return None
    return max(counts) / min(counts)


def indicator(name: str, window: str, value: float | None) -> Indicator:
    """The indicator `name` judged against its target; `value` None (no data) leaves `ok` None."""
    goal = target(name)
    ok = None if value is None else goal.met(value)
    return {
        "name": name,
        "window": window,
        "value": value,
        "target": {"op": goal.op, "value": goal.threshold},
        "ok": ok,
    }
