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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eddie_otel.catalogue import Kind, Metric, by_prometheus_name

__all__ = [
    "AGENT_ACTIVE_TASKS",
    "AGENT_TASKS_EXECUTED",
    "CHUNK_EXECUTION",
    "CHUNK_FAILURE",
    "DOCKER_CPU_LIMIT",
    "DOCKER_ELASTIC_ADJUSTMENT",
    "DOCKER_MEMORY_LIMIT",
    "FALLBACK_DEPTH_EXCEEDED",
    "MERGE_CHUNKS_COMBINED",
    "MERGE_DEDUPLICATION",
    "TARGET_LABELS",
    "TASK_EXECUTION",
    "TASK_FAILURE",
    "TASK_SPLIT",
    "TASK_SPLIT_CHUNKS",
    "TASK_SUCCESS",
    "TIMEOUT_EVENTS",
    "Where",
    "active_agent_count",
    "agent_balance",
    "aggregate",
    "either_sum",
    "failure_ratio",
    "indicators",
    "mean",
    "merge_efficiency",
    "quantile",
    "ratio",
    "selector",
    "success_ratio",
    "sum_increase",
    "sum_rate",
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


# Labels Prometheus attaches to every scraped series, whatever the metric.
TARGET_LABELS = ("job", "instance")

# Label → regular expression: the series a query is narrowed to (None or empty: every series).
Where = Mapping[str, str] | None


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(metric: Metric, where: Where = None, suffix: str = "", extra: Sequence[str] = ()) -> str:
    """`metric` (plus `suffix`, such as `_bucket`) with the matchers of `where` its labels allow, and `extra` ones."""
    labels = (*TARGET_LABELS, *metric.labels)
    matchers = [f"{label}=~{_quoted(value)}" for label, value in (where or {}).items() if label in labels]
    matchers += extra
    name = metric.prometheus_name + suffix
    return f"{name}{{{', '.join(matchers)}}}" if matchers else name


def _check_labels(metric: Metric, by: Sequence[str]) -> None:
    unknown = [label for label in by if label not in metric.labels and label not in TARGET_LABELS]
    if unknown:
        raise ValueError(f"{metric.prometheus_name} has no label {unknown[0]!r} (labels: {list(metric.labels)})")


def aggregate(operator: str, expr: str, by: Sequence[str] = ()) -> str:
    """`operator by (labels) (expr)`, or `operator(expr)` across everything when `by` is empty."""
    return f"{operator} by ({', '.join(by)}) ({expr})" if by else f"{operator}({expr})"


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


def success_ratio(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Succeeded tasks / finished tasks over `window`; 0 (not "no data") where every task failed."""
    successes = sum_rate(TASK_SUCCESS, window, by, where=where)
    failures = sum_rate(TASK_FAILURE, window, by, where=where)
    return ratio(f"({successes} or {failures} * 0)", either_sum(successes, failures))


def merge_efficiency(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """1 - duplicates removed / chunk results combined over `window`: the share of merged results that were new."""
    deduplicated = sum_rate(MERGE_DEDUPLICATION, window, by, where=where)
    combined = sum_rate(MERGE_CHUNKS_COMBINED, window, by, where=where)
    return f"1 - {ratio(deduplicated, combined)}"


def _active_agents(window: str, by: Sequence[str], where: Where) -> str:
    return f"{sum_rate(AGENT_TASKS_EXECUTED, window, (*by, 'agent'), where=where)} > 0"


def agent_balance(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """Busiest agent's executions / least busy agent's over `window`, among agents that executed any (1 = even)."""
    active = _active_agents(window, by, where)
    return f"{aggregate('max', active, by)} / {aggregate('min', active, by)}"


def active_agent_count(window: str, by: Sequence[str] = (), *, where: Where = None) -> str:
    """The number of agents that finished at least one task or chunk over `window`."""
    return aggregate("count", _active_agents(window, by, where), by)


def timeouts_per_hour(window: str, *, where: Where = None) -> str:
    """Timeouts per hour across all agents, averaged over `window`."""
    return f"{sum_rate(TIMEOUT_EVENTS, window, where=where)} * 3600"


def indicators(window: str, *, where: Where = None) -> dict[str, str]:
    """The five success indicators over `window`, by the names of the summary's `indicators`.

    The dashboard's stat panels ask them over `$__range`, the fleet summary over a fixed window:
    one definition, so both show the same number for the same window.
    """
    return {
        "success_rate": success_ratio(window, where=where),
        "latency_p99_seconds": quantile(0.99, TASK_EXECUTION, window, where=where),
        "timeouts_per_hour": timeouts_per_hour(window, where=where),
        "merge_efficiency": merge_efficiency(window, where=where),
        "agent_balance_ratio": agent_balance(window, where=where),
    }
