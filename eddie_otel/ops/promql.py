"""PromQL built from the catalogue: the rates, ratios and quantiles the dashboard and the alerts share.

Every expression aggregates with `sum` (over instances and label values) before it
divides or takes a quantile, so it stays correct with many series and instances.
A ratio divides two rates, never a rate by a count, and yields no value rather
than a division by zero when nothing happened.

Every builder takes `where`: label → regular expression, the matchers that narrow
its series (the dashboard's `$job`, `$instance`, `$agent` and `$stage`; a fleet
summary's job). `selector` is the one place they are written: a matcher goes only
on metrics that have its label, so `{stage=~"$stage"}` never empties a query of a
metric without stages.

Rates over `$__rate_interval` draw the dashboard's graphs and feed the alerts. The success
indicators (the dashboard's stat panels and the fleet summary) count instead: `sum_counted`
is how much each counter grew over the window, with a series that appears during the window
counted from zero, since eddie-otel's series appear already holding their first count and
`increase()` sees no step there (see `increase_from_zero` for the definition and its limits).

What a counter counted since its process started, or a gauge's level now, is `current`: its
value summed (or the largest, for a gauge such as a timestamp) over instances; the fleet summary
asks it of the targets that are up only (`live`), as its totals do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from eddie_otel.catalogue import Kind, Metric, by_prometheus_name

__all__ = [
    "AGENT_ACTIVE_TASKS",
    "AGENT_CAPACITY",
    "AGENT_COST",
    "AGENT_LAST_SEEN",
    "AGENT_TASKS_EXECUTED",
    "AGENT_TOKENS",
    "CHUNK_EXECUTION",
    "CHUNK_FAILURE",
    "CHUNK_QUEUE_WAIT",
    "DOCKER_CPU_LIMIT",
    "DOCKER_ELASTIC_ADJUSTMENT",
    "DOCKER_MEMORY_LIMIT",
    "FALLBACK_CHUNK_SECONDS",
    "FALLBACK_COST",
    "FALLBACK_DEPTH_EXCEEDED",
    "MERGE_CHUNKS_COMBINED",
    "MERGE_DEDUPLICATION",
    "START_LOOKBACK",
    "TARGET_LABELS",
    "TASK_EXECUTION",
    "TASK_FAILURE",
    "TASK_FALLBACK",
    "TASK_SPLIT",
    "TASK_SPLIT_CHUNKS",
    "TASK_SUCCESS",
    "TASK_TIMEOUT",
    "TIMEOUT_EVENTS",
    "Exact",
    "Where",
    "active_agent_count",
    "agent_balance",
    "aggregate",
    "chunk_hours",
    "cost_per_rescued_task",
    "counted_quantile",
    "current",
    "duration_seconds",
    "either_sum",
    "failure_ratio",
    "fallback_rate",
    "hit_share",
    "increase_from_zero",
    "indicators",
    "last_seen",
    "live",
    "mean",
    "merge_efficiency",
    "quantile",
    "ratio",
    "recorded",
    "rescue_ratio",
    "saturation",
    "seconds_since_seen",
    "selector",
    "success_ratio",
    "sum_counted",
    "sum_increase",
    "sum_rate",
    "timeout_in_use",
    "timeouts_per_hour",
]

# Looked up rather than retyped: a name missing from the catalogue fails here, at first use.
TASK_SPLIT = by_prometheus_name("task_split_total")
TASK_SPLIT_CHUNKS = by_prometheus_name("task_split_chunks_total")
TIMEOUT_EVENTS = by_prometheus_name("timeout_events_total")
FALLBACK_DEPTH_EXCEEDED = by_prometheus_name("fallback_depth_exceeded_total")
TASK_EXECUTION = by_prometheus_name("task_execution_seconds")
CHUNK_EXECUTION = by_prometheus_name("chunk_execution_seconds")
TASK_SUCCESS = by_prometheus_name("task_success_total")
TASK_FAILURE = by_prometheus_name("task_failure_total")
AGENT_ACTIVE_TASKS = by_prometheus_name("agent_active_tasks")
AGENT_TASKS_EXECUTED = by_prometheus_name("agent_tasks_executed_total")
DOCKER_CPU_LIMIT = by_prometheus_name("docker_container_cpu_limit")
DOCKER_MEMORY_LIMIT = by_prometheus_name("docker_container_memory_limit_bytes")
DOCKER_ELASTIC_ADJUSTMENT = by_prometheus_name("docker_elastic_adjustment_total")
MERGE_DEDUPLICATION = by_prometheus_name("merge_deduplication_total")
MERGE_CHUNKS_COMBINED = by_prometheus_name("merge_chunks_combined_total")
CHUNK_FAILURE = by_prometheus_name("chunk_failure_total")
TASK_FALLBACK = by_prometheus_name("task_fallback_total")
FALLBACK_CHUNK_SECONDS = by_prometheus_name("fallback_chunk_seconds_total")
FALLBACK_COST = by_prometheus_name("fallback_cost_usd_total")
CHUNK_QUEUE_WAIT = by_prometheus_name("chunk_queue_wait_seconds")
AGENT_CAPACITY = by_prometheus_name("agent_capacity")
AGENT_LAST_SEEN = by_prometheus_name("agent_last_seen_timestamp_seconds")
AGENT_TOKENS = by_prometheus_name("agent_tokens_total")
AGENT_COST = by_prometheus_name("agent_cost_usd_total")
TASK_TIMEOUT = by_prometheus_name("task_timeout_seconds")


# Labels Prometheus attaches to every scraped series, whatever the metric.
TARGET_LABELS = ("job", "instance")


class Exact(str):
    """A value of `Where` matched as it is (`label="value"`), not as a regular expression."""

    __slots__ = ()


# Label → regular expression (or `Exact` value): the series a query is narrowed to (None or empty: every series).
Where = Mapping[str, str] | None


def _quoted(value: str) -> str:
    # A JSON string is a valid PromQL string literal: quotes, backslashes and control characters escaped.
    return json.dumps(value, ensure_ascii=False)


def _matchers(labels: Sequence[str], where: Where) -> list[str]:
    """The matchers of `where` for the labels a series has (`labels`): the others would empty the query."""
    return [
        f"{label}={'' if isinstance(value, Exact) else '~'}{_quoted(value)}"
        for label, value in (where or {}).items()
        if label in labels
    ]


def _series(name: str, matchers: Sequence[str]) -> str:
    return f"{name}{{{', '.join(matchers)}}}" if matchers else name


def selector(metric: Metric, where: Where = None, suffix: str = "", extra: Sequence[str] = ()) -> str:
    """`metric` (plus `suffix`, such as `_bucket`) with the matchers of `where` its labels allow, and `extra` ones."""
    matchers = _matchers((*TARGET_LABELS, *metric.labels), where) + list(extra)
    return _series(metric.prometheus_name + suffix, matchers)


def _check_labels(metric: Metric, by: Sequence[str]) -> None:
    unknown = [label for label in by if label not in metric.labels and label not in TARGET_LABELS]
    if unknown:
        raise ValueError(f"{metric.prometheus_name} has no label {unknown[0]!r} (labels: {list(metric.labels)})")


def aggregate(operator: str, expr: str, by: Sequence[str] = ()) -> str:
    """`operator by (labels) (expr)`, or `operator(expr)` across everything when `by` is empty."""
    return f"{operator} by ({', '.join(by)}) ({expr})" if by else f"{operator}({expr})"


def live(expr: str) -> str:
    """`expr` on the targets Prometheus reaches now (`up == 1`) only.

    A target that is down keeps its last samples for a few minutes: without this, a process that
    stopped would still count as a live instance's current values.
    """
    return f"({expr} and on (job, instance) (up == 1))"


def current(
    operator: str, metric: Metric, by: Sequence[str] = (), *, where: Where = None, up_only: bool = False
) -> str:
    """The current value of a counter (its total since its process started) or a gauge (its level now),
    aggregated with `operator` (`sum`, `max`) over instances and the labels not in `by`; with `up_only`,
    over the targets that are up only (`live`)."""
    if metric.kind is Kind.HISTOGRAM:
        raise ValueError(f"a current value needs a counter or a gauge, and {metric.prometheus_name} is a histogram")
    _check_labels(metric, by)
    series = selector(metric, where)
    return aggregate(operator, live(series) if up_only else series, by)


def recorded(operator: str, record: str, labels: Sequence[str], by: Sequence[str] = (), *, where: Where = None) -> str:
    """The series of the recording rule `record` (whose labels are `labels`), narrowed by the matchers of
    `where` for those labels, aggregated with `operator` over the labels not in `by`."""
    unknown = [label for label in by if label not in labels]
    if unknown:
        raise ValueError(f"{record} has no label {unknown[0]!r} (labels: {list(labels)})")
    return aggregate(operator, _series(record, _matchers(labels, where)), by)


def sum_rate(metric: Metric, window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Per-second rate of a counter over `window`, summed over instances and the labels not in `by`."""
    if metric.kind is not Kind.COUNTER:
        raise ValueError(f"rate() needs a counter, and {metric.prometheus_name} is a {metric.kind.value}")
    _check_labels(metric, by)
    return aggregate("sum", f"rate({selector(metric, where)}[{window}])", by)


def sum_increase(metric: Metric, window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Increase of a counter over `window`, summed over instances and the labels not in `by`."""
    if metric.kind is not Kind.COUNTER:
        raise ValueError(f"increase() needs a counter, and {metric.prometheus_name} is a {metric.kind.value}")
    _check_labels(metric, by)
    return aggregate("sum", f"increase({selector(metric, where)}[{window}])", by)


# A series with no sample in this long before a window's start is new in the window: counted from zero.
# Prometheus' own lookback: a series it would show at the window's start is not new.
START_LOOKBACK = "5m"

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def duration_seconds(duration: str) -> float:
    """A PromQL duration (`90s`, `1h30m`) in seconds; ValueError for anything else."""
    parts = _DURATION.findall(duration)
    if not duration or "".join(number + unit for number, unit in parts) != duration:
        raise ValueError(f"not a PromQL duration: {duration!r}")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def _window_seconds(window: str) -> str:
    """`window` in seconds, as PromQL: a number, or Grafana's `$__range_s` for its `$__range`."""
    if window == "$__range":
        return "$__range_s"
    return f"{duration_seconds(window):g}"


def increase_from_zero(series: str, window: str) -> str:
    """Per series of the counter selector `series`: how much it grew over `window`, a new series counted from zero.

    - A series with a sample in the `START_LOOKBACK` before the window's start grew by its last
      value in the window minus that sample's (stale markers, a failed scrape, are skipped).
    - A series without one is new in the window: it grew by its last value, all of it counted
      in the window. So is a series whose last value is below the one before the window: its
      process restarted at the window's start.
    - A series that restarted from zero inside the window (`resets()`) grew by what
      Prometheus' `increase()` says: Prometheus' estimate, extrapolated to the window's edges.

    Exact, unlike `increase()`, which extrapolates and sees no step where a series appears.
    A series that vanished during the window (a process that stopped) counts up to its last
    sample. Limits: a process unreachable across the window's start for longer than
    `START_LOOKBACK` counts as new (its whole value again); a restart on the same address and
    labels that first shows a value above the old one is undercounted; an increment between a
    process's last scrape and its exit is never seen.
    """
    end = f"last_over_time({series}[{window}])"
    start = f"last_over_time({series}[{START_LOOKBACK}] offset {window})"
    steady = f"({end} - ({start} or {end} * 0)) >= 0 or {end}"
    return f"(({steady}) unless resets({series}[{window}]) > 0 or increase({series}[{window}]))"


_HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def sum_counted(metric: Metric, window: str, by: Sequence[str] = (), *, where: Where = None, suffix: str = "") -> str:
    """What a counter (or a histogram's `suffix` series) counted over `window`, summed over instances and the
    labels not in `by`: `increase_from_zero`, so a series new in the window counts from zero."""
    if not (
        (metric.kind is Kind.COUNTER and not suffix) or (metric.kind is Kind.HISTOGRAM and suffix in _HISTOGRAM_SERIES)
    ):
        raise ValueError(f"counting needs a counter or a histogram's series, not {metric.prometheus_name}{suffix}")
    _check_labels(metric, by)
    return aggregate("sum", increase_from_zero(selector(metric, where, suffix), window), by)


def counted_quantile(q: float, metric: Metric, window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """`quantile` over what the histogram's buckets counted in `window` (`sum_counted`): new series included."""
    if metric.kind is not Kind.HISTOGRAM:
        raise ValueError(
            f"histogram_quantile() needs a histogram, and {metric.prometheus_name} is a {metric.kind.value}"
        )
    _check_labels(metric, by)
    counted = increase_from_zero(selector(metric, where, "_bucket"), window)
    return f"histogram_quantile({q}, {aggregate('sum', counted, ('le', *by))})"


def quantile(q: float, metric: Metric, window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """The `q` quantile of a histogram over `window`: bucket rates summed by `le` (and `by`) first."""
    if metric.kind is not Kind.HISTOGRAM:
        raise ValueError(
            f"histogram_quantile() needs a histogram, and {metric.prometheus_name} is a {metric.kind.value}"
        )
    _check_labels(metric, by)
    buckets = aggregate("sum", f"rate({selector(metric, where, '_bucket')}[{window}])", ("le", *by))
    return f"histogram_quantile({q}, {buckets})"


def mean(metric: Metric, window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Mean of a histogram's observations over `window`: the rate of `_sum` over the rate of `_count`."""
    if metric.kind is not Kind.HISTOGRAM:
        raise ValueError(f"a mean needs a histogram, and {metric.prometheus_name} is a {metric.kind.value}")
    _check_labels(metric, by)
    total = aggregate("sum", f"rate({selector(metric, where, '_sum')}[{window}])", by)
    count = aggregate("sum", f"rate({selector(metric, where, '_count')}[{window}])", by)
    return ratio(total, count)


def either_sum(a: str, b: str) -> str:
    """`a + b` where both have a series, else whichever has one: a counter never incremented has no series."""
    return f"(({a} + {b}) or {a} or {b})"


def ratio(numerator: str, denominator: str) -> str:
    """`numerator / denominator`, with no result (rather than NaN or +Inf) where the denominator is 0."""
    return f"{numerator} / ({denominator} > 0)"


def failure_ratio(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Failed tasks / finished tasks (failed + succeeded) over `window`: a ratio of rates, between 0 and 1."""
    failures = sum_rate(TASK_FAILURE, window, by, where=where)
    return ratio(failures, either_sum(failures, sum_rate(TASK_SUCCESS, window, by, where=where)))


def _success(successes: str, failures: str) -> str:
    return ratio(f"({successes} or {failures} * 0)", either_sum(successes, failures))


def success_ratio(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Succeeded tasks / finished tasks over `window`; 0 (not "no data") where every task failed."""
    return _success(sum_rate(TASK_SUCCESS, window, by, where=where), sum_rate(TASK_FAILURE, window, by, where=where))


def _efficiency(deduplicated: str, combined: str) -> str:
    return f"1 - {ratio(deduplicated, combined)}"


def merge_efficiency(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """1 - duplicates removed / chunk results combined over `window`: the share of merged results that were new."""
    return _efficiency(
        sum_rate(MERGE_DEDUPLICATION, window, by, where=where), sum_rate(MERGE_CHUNKS_COMBINED, window, by, where=where)
    )


def _active_agents(window: str, by: Sequence[str], where: Where) -> str:
    return f"{sum_rate(AGENT_TASKS_EXECUTED, window, (*by, 'agent'), where=where)} > 0"


def _balance(active: str, by: Sequence[str]) -> str:
    return f"{aggregate('max', active, by)} / {aggregate('min', active, by)}"


def agent_balance(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Busiest agent's executions / least busy agent's over `window`, among agents that executed any (1 = even)."""
    return _balance(_active_agents(window, by, where), by)


def active_agent_count(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """The number of agents that finished at least one task or chunk over `window`."""
    return aggregate("count", _active_agents(window, by, where), by)


def fallback_rate(outcome: str, window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Split tasks that finished `rescued` or `failed` per second over `window` (task_fallback_total)."""
    _check_labels(TASK_FALLBACK, by)
    series = selector(TASK_FALLBACK, where, extra=(f"outcome={_quoted(outcome)}",))
    return aggregate("sum", f"rate({series}[{window}])", by)


def rescue_ratio(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Rescued / finished split tasks over `window`: 0 (not "no data") where every split task failed."""
    return _success(fallback_rate("rescued", window, by, where=where), fallback_rate("failed", window, by, where=where))


def chunk_hours(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Hours spent in chunks created by splits over `window` (fallback_chunk_seconds_total / 3600)."""
    return f"{sum_increase(FALLBACK_CHUNK_SECONDS, window, by, where=where)} / 3600"


def cost_per_rescued_task(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Model cost of the chunks created by splits / split tasks rescued over `window`, in US dollars.

    The cost of every fallback chunk, those of tasks that failed in the end included: what a rescue costs.
    """
    return ratio(sum_rate(FALLBACK_COST, window, by, where=where), fallback_rate("rescued", window, by, where=where))


def saturation(
    by: Sequence[str] = ("agent",), *, where: Where = None, up_only: bool = False, idle_as_zero: bool = False
) -> str:
    """Tasks and chunks running / the capacity the agents said they have, summed over instances per `by`
    (with `up_only`, over the targets that are up only).

    No value for an agent that never said its capacity (or said 0). An agent with a capacity that
    never ran anything has no agent_active_tasks series: no value either, or 0 with `idle_as_zero`
    (as the process summary says).
    """
    active = current("sum", AGENT_ACTIVE_TASKS, by, where=where, up_only=up_only)
    capacity = current("sum", AGENT_CAPACITY, by, where=where, up_only=up_only)
    return ratio(f"({active} or {capacity} * 0)" if idle_as_zero else active, capacity)


def last_seen(by: Sequence[str] = ("agent",), *, where: Where = None, up_only: bool = False) -> str:
    """When anything was last recorded for an agent (Unix seconds, to within 10 s): the latest of any instance
    (with `up_only`, of any instance that is up)."""
    return current("max", AGENT_LAST_SEEN, by, where=where, up_only=up_only)


def seconds_since_seen(by: Sequence[str] = ("agent",), *, where: Where = None) -> str:
    """Seconds since anything was last recorded for an agent, by any instance (to within 10 s)."""
    return f"time() - {last_seen(by, where=where)}"


def timeout_in_use(by: Sequence[str] = ("stage",), *, where: Where = None, up_only: bool = False) -> str:
    """The timeout a stage runs with (task_timeout_seconds): the largest any instance reports (with `up_only`,
    any instance that is up)."""
    return current("max", TASK_TIMEOUT, by, where=where, up_only=up_only)


def hit_share(window: str, by: Sequence[str] = ("stage",), *, where: Where = None) -> str:
    """Timeouts / finished tasks (successes and failures) counted over `window` (`sum_counted`), per `by`:
    the share of a stage's tasks that hit its timeout.

    0 (not "no data") for a stage with finished tasks and no timeout; no value for one with none finished.
    """
    finished = either_sum(
        sum_counted(TASK_SUCCESS, window, by, where=where), sum_counted(TASK_FAILURE, window, by, where=where)
    )
    timeouts = f"({sum_counted(TIMEOUT_EVENTS, window, by, where=where)} or {finished} * 0)"
    return ratio(timeouts, finished)


def _or_zero(expr: str) -> str:
    return f"({expr} or vector(0))"


def timeouts_per_hour(window: str, *, where: Where = None) -> str:
    """Timeouts across all agents counted over `window` (`sum_counted`), per hour of it.

    No value while the window saw no activity at all (no task or chunk finished, no timeout), as in
    the process summary: "no timeouts" then means nothing.
    """
    timeouts = _or_zero(sum_counted(TIMEOUT_EVENTS, window, where=where))
    activity = " + ".join(
        _or_zero(sum_counted(metric, window, where=where))
        for metric in (TASK_SUCCESS, TASK_FAILURE, AGENT_TASKS_EXECUTED, TIMEOUT_EVENTS)
    )
    return f"{timeouts} * 3600 / {_window_seconds(window)} and on () ({activity} > 0)"


def indicators(window: str, *, where: Where = None) -> dict[str, str]:
    """The five success indicators over `window`, by the names of the summary's `indicators`.

    The dashboard's stat panels ask them over `$__range`, the fleet summary over a fixed window:
    one definition, so both show the same number for the same window. Each counts what happened
    in the window (`sum_counted`), series that appeared during it included.
    """
    executed = sum_counted(AGENT_TASKS_EXECUTED, window, ("agent",), where=where)
    return {
        "success_rate": _success(
            sum_counted(TASK_SUCCESS, window, where=where), sum_counted(TASK_FAILURE, window, where=where)
        ),
        "latency_p99_seconds": counted_quantile(0.99, TASK_EXECUTION, window, where=where),
        "timeouts_per_hour": timeouts_per_hour(window, where=where),
        "merge_efficiency": _efficiency(
            sum_counted(MERGE_DEDUPLICATION, window, where=where),
            sum_counted(MERGE_CHUNKS_COMBINED, window, where=where),
        ),
        "agent_balance_ratio": _balance(f"{executed} > 0", ()),
    }
