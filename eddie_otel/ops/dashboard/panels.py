"""The dashboard's content: rows of panels and their PromQL, built from the catalogue and the thresholds.

`render` turns these into the JSON Grafana loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eddie_otel.catalogue import (
    DOCKER_CPU_THROTTLED,
    DOCKER_CPU_USAGE,
    DOCKER_MEMORY_USAGE,
    DOCKER_OOM_KILLS,
    TASK_EXECUTION,
    TASK_FAILURE,
    TASK_SUCCESS,
    TASK_TIMEOUT,
    TASK_TIMEOUT_RECOMMENDED,
    TIMEOUT_EVENTS,
)
from eddie_otel.objectives import OBJECTIVES
from eddie_otel.ops import anomaly, promql, slo
from eddie_otel.ops.thresholds import Thresholds

__all__ = [
    "BAND",
    "BAND_LOW",
    "FILTERS",
    "RANGE",
    "RATE_INTERVAL",
    "VARIABLES",
    "WEEK_OF_HISTORY",
    "Panel",
    "Query",
    "Row",
    "anomaly_queries",
    "rows",
]

# Grafana's window for rate(): at least four scrape intervals, so every window holds enough samples.
RATE_INTERVAL = "$__rate_interval"
# The dashboard's time range: the success indicators summarise all of it.
RANGE = "$__range"

# The template variables that narrow every query, and the metric and label each lists its values from.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("job", "target_info", "job"),
    ("instance", "target_info", "instance"),
    ("agent", promql.AGENT_TASKS_EXECUTED.prometheus_name, "agent"),
    ("stage", promql.TASK_EXECUTION.prometheus_name + "_count", "stage"),
)
# Label → `$variable`: every query matches the variables' regular expressions (multi-value, All = `.*`).
FILTERS: dict[str, str] = {name: f"${name}" for name, _, _ in VARIABLES}

_PER_SECOND = "suffix:/s"

# The anomaly band of a signal (eddie_otel/ops/anomaly.py), drawn on the panel its EddieAnomaly rule links to:
# the upper series (legend BAND) filled down to the lower one (BAND_LOW, left out of the legend), both dashed.
BAND = "expected range"
BAND_LOW = "expected range (low)"
# The band's recorded series exist only once a week of the signal is recorded (anomaly.py says why): the
# dashboard's queries of these return nothing before that.
WEEK_OF_HISTORY: tuple[str, ...] = tuple(
    anomaly.record_name(signal, part) for signal in anomaly.SIGNALS for part in ("upper", "lower")
)
# The band is per scrape job, over all its instances, agents and stages: only the job variable narrows it.
_JOB_ONLY: dict[str, str] = {"job": FILTERS["job"]}


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: what it shows and how."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str
    kind: str = "timeseries"
    bars: bool = False
    # Ratios are bounded; everything else starts at zero.
    max: float | None = None
    # (base colour, [(value, colour), ...]): stat colours, or a dashed line on a time series.
    thresholds: tuple[str, tuple[tuple[float, str], ...]] | None = None
    decimals: int | None = None
    # Histogram panels show the exemplars Prometheus stored, each linking to its trace.
    exemplars: bool = False

    # Draws an anomaly band: the targets with the legends BAND and BAND_LOW are styled as one.
    band: bool = False


@dataclass(frozen=True)
class Row:
    """A titled row of panels; `widths` in grid units, half the width each when empty."""

    title: str
    panels: tuple[Panel, ...]
    widths: tuple[int, ...] = field(default=())


def anomaly_queries(signal: anomaly.Signal, legend: str, *, complement: bool = False) -> tuple[Query, ...]:
    """The signal as EddieAnomaly reads it (over 5 minutes, per job, from the raw series) and its band's edges.

    With several jobs selected, an additive signal (events per second) is their sum, with the sum of their bands;
    a ratio or a quantile is the highest job's value, with the widest of their bands. `complement` draws
    1 - the signal (a success ratio for the failure ratio), so the band's edges swap.
    """
    upper, lower = (f'{anomaly.record_name(signal, part)}{{job=~"{FILTERS["job"]}"}}' for part in ("upper", "lower"))
    value = signal.query(_JOB_ONLY)
    if signal.additive:
        line, top, bottom = f"sum({value})", f"sum({upper})", f"sum({lower})"
    else:
        line, top, bottom = f"max({value})", f"max({upper})", f"min({lower})"
    if complement:
        line, top, bottom = f"1 - {line}", f"1 - {bottom}", f"1 - {top}"
    return Query(line, legend), Query(top, BAND), Query(bottom, BAND_LOW)


def _band_text(signal: anomaly.Signal, line: str) -> str:
    return (
        f" Dashed, {BAND}: the band EddieAnomaly compares {line} over 5 minutes with "
        f"(eddie:anomaly:{signal.name}:upper and :lower: the job's usual level over its last week, "
        f"± {anomaly.BAND_STDDEVS} standard deviations and at least {anomaly.MIN_BAND:.0%} of it); "
        "drawn once a week of the signal is recorded."
    )


def _per_second(metric_description: str) -> str:
    return f"{metric_description} Per second, summed over instances."


def _indicator_row(t: Thresholds) -> Row:
    indicator = promql.indicators(RANGE, where=FILTERS)
    return Row(
        "Success indicators (over the dashboard's time range)",
        (
            Panel(
                "Success rate",
                f"Succeeded tasks / finished tasks. Target above {t.success_rate:.0%}.",
                (Query(indicator["success_rate"]),),
                "percentunit",
                kind="stat",
                thresholds=("red", ((t.success_rate, "green"),)),
                decimals=1,
            ),
            Panel(
                "Latency p99",
                f"99th percentile of task execution time. Target under {t.latency_p99_seconds:g} s.",
                (Query(indicator["latency_p99_seconds"]),),
                "s",
                kind="stat",
                thresholds=("green", ((t.latency_p99_seconds, "red"),)),
                decimals=1,
            ),
            Panel(
                "Timeouts per hour",
                f"Timeouts across all agents, per hour. Target under {t.timeouts_per_hour:g}.",
                (Query(indicator["timeouts_per_hour"]),),
                "short",
                kind="stat",
                thresholds=("green", ((t.timeouts_per_hour, "red"),)),
                decimals=1,
            ),
            Panel(
                "Merge efficiency",
                f"1 − duplicates removed / chunk results combined. Target above {t.merge_efficiency:.0%}.",
                (Query(indicator["merge_efficiency"]),),
                "percentunit",
                kind="stat",
                thresholds=("red", ((t.merge_efficiency, "green"),)),
                decimals=1,
            ),
            Panel(
                "Agent balance",
                "Tasks and chunks executed by the busiest agent / by the least busy active one. "
                f"Target under {t.agent_balance:g}×.",
                (Query(indicator["agent_balance_ratio"]),),
                "suffix:×",
                kind="stat",
                thresholds=("green", ((t.agent_balance, "red"),)),
                decimals=2,
            ),
        ),
        widths=(5, 5, 5, 5, 4),
    )


def _error_budget_row() -> Row:
    panels: list[Panel] = []
    for objective in OBJECTIVES:
        budget_title, burn_title = slo.panel_titles(objective)
        critical = max(burn.factor for burn in slo.BURN_RATES)
        panels += [
            Panel(
                budget_title,
                f"{objective.description} Objective {objective.objective:.0%} over {objective.period}: the share "
                f"of the {objective.error_budget:.0%} error budget not yet spent (below 0: objective missed).",
                (Query(slo.budget_remaining(objective, where=FILTERS)),),
                "percentunit",
                kind="stat",
                thresholds=("red", ((0.0, "orange"), (0.25, "green"))),
                decimals=1,
            ),
            Panel(
                burn_title,
                "How fast the error budget burns: 1× spends exactly the budget in "
                f"{objective.period}. {objective.alert} pages at {critical:g}× over 1 h (and 5 m) or 6× over "
                "6 h (and 30 m), and opens a ticket at 3× over 1 d (and 2 h) or 1× over 3 d (and 6 h).",
                tuple(
                    Query(
                        slo.burn_rate(objective, burn.long, where=FILTERS),
                        f"{burn.long} ({burn.severity} above {burn.factor:g}×)",
                    )
                    for burn in slo.BURN_RATES
                ),
                "suffix:×",
                thresholds=("transparent", ((critical, "red"),)),
            ),
        ]
    return Row(f"Error budget ({OBJECTIVES[0].period} objectives)", tuple(panels), widths=(6, 18, 6, 18))


def _docker_usage_panels(t: Thresholds) -> tuple[Panel, ...]:
    """Usage against limit, throttling and OOM kills of each container (what `eddie-otel docker-watch` records)."""
    ri, w, by = RATE_INTERVAL, FILTERS, ("container",)
    cpu_limit = promql.aggregate("max", promql.selector(promql.DOCKER_CPU_LIMIT, w), by)
    memory_limit = promql.aggregate("max", promql.selector(promql.DOCKER_MEMORY_LIMIT, w), by)
    return (
        Panel(
            "Container CPU usage against limit (cores)",
            f"{DOCKER_CPU_USAGE.description} Cores in use (CPU seconds per second) beside the limit "
            "(millicores / 1000).",
            (
                Query(promql.sum_rate(DOCKER_CPU_USAGE, ri, by, where=w), "{{container}} used"),
                Query(f"{cpu_limit} / 1000", "{{container}} limit"),
            ),
            "suffix: cores",
            decimals=2,
        ),
        Panel(
            "Container memory usage against limit",
            f"{DOCKER_MEMORY_USAGE.description} Beside the limit; EddieContainerMemoryNearLimit fires above "
            f"{t.container_memory_ratio:.0%} of it for {t.container_memory_for}.",
            (
                Query(promql.aggregate("max", promql.selector(DOCKER_MEMORY_USAGE, w), by), "{{container}} used"),
                Query(memory_limit, "{{container}} limit"),
            ),
            "bytes",
        ),
        Panel(
            "Container CPU throttling",
            f"{DOCKER_CPU_THROTTLED.description} Seconds held back per second: a container at its limit.",
            (Query(promql.sum_rate(DOCKER_CPU_THROTTLED, ri, by, where=w), "{{container}}"),),
            "suffix: s/s",
            decimals=2,
        ),
        Panel(
            "Container OOM kills",
            f"{DOCKER_OOM_KILLS.description} Count per interval; any one fires EddieContainerOOMKilled.",
            (Query(promql.sum_increase(DOCKER_OOM_KILLS, ri, by, where=w), "{{container}}"),),
            "short",
            bars=True,
        ),
    )


def rows(t: Thresholds) -> tuple[Row, ...]:
    """The dashboard's rows, top to bottom, with the targets of `t` as thresholds."""
    ri, w = RATE_INTERVAL, FILTERS
    agent, stage = ("agent",), ("stage",)
    splits, timeouts = anomaly.signal("splits"), anomaly.signal("timeouts")
    latency, failures = anomaly.signal("latency_p99"), anomaly.signal("failure_ratio")
    return (
        _indicator_row(t),
        Row(
            "Fallback: splits, timeouts, depth",
            (
                Panel(
                    "Task splits by agent",
                    _per_second(promql.TASK_SPLIT.description) + _band_text(splits, "all agents' splits"),
                    (
                        Query(promql.sum_rate(promql.TASK_SPLIT, ri, agent, where=w), "{{agent}}"),
                        *anomaly_queries(splits, "all agents (5m)"),
                    ),
                    _PER_SECOND,
                    band=True,
                ),
                Panel(
                    "Chunks created by agent",
                    _per_second(promql.TASK_SPLIT_CHUNKS.description),
                    (Query(promql.sum_rate(promql.TASK_SPLIT_CHUNKS, ri, agent, where=w), "{{agent}}"),),
                    _PER_SECOND,
                ),
                Panel(
                    "Chunks per split by agent",
                    "Chunks created / splits: how finely timed-out work is cut.",
                    (
                        Query(
                            promql.ratio(
                                promql.sum_rate(promql.TASK_SPLIT_CHUNKS, ri, agent, where=w),
                                promql.sum_rate(promql.TASK_SPLIT, ri, agent, where=w),
                            ),
                            "{{agent}}",
                        ),
                    ),
                    "short",
                ),
                Panel(
                    "Timeout events by agent and stage",
                    _per_second(promql.TIMEOUT_EVENTS.description) + _band_text(timeouts, "all agents' timeouts"),
                    (
                        Query(
                            promql.sum_rate(promql.TIMEOUT_EVENTS, ri, ("agent", "stage"), where=w),
                            "{{agent}} · {{stage}}",
                        ),
                        *anomaly_queries(timeouts, "all agents and stages (5m)"),
                    ),
                    _PER_SECOND,
                    band=True,
                ),
                Panel(
                    "Fallback depth violations by agent",
                    f"{promql.FALLBACK_DEPTH_EXCEEDED.description} Count per interval; any one fires "
                    "EddieFallbackDepthExceeded.",
                    (Query(promql.sum_increase(promql.FALLBACK_DEPTH_EXCEEDED, ri, agent, where=w), "{{agent}}"),),
                    "short",
                    bars=True,
                ),
            ),
            widths=(8, 8, 8, 12, 12),
        ),
        Row(
            "Latency",
            (
                Panel(
                    "Task execution time by stage",
                    f"{promql.TASK_EXECUTION.description} p95, p99 and mean. "
                    f"The p99 target is under {t.latency_p99_seconds:g} s."
                    + _band_text(latency, "the p99 of all stages"),
                    (
                        Query(promql.quantile(0.95, promql.TASK_EXECUTION, ri, stage, where=w), "{{stage}} p95"),
                        Query(promql.quantile(0.99, promql.TASK_EXECUTION, ri, stage, where=w), "{{stage}} p99"),
                        Query(promql.mean(promql.TASK_EXECUTION, ri, stage, where=w), "{{stage}} mean"),
                        *anomaly_queries(latency, "all stages p99 (5m)"),
                    ),
                    "s",
                    thresholds=("transparent", ((t.latency_p99_seconds, "red"),)),
                    exemplars=True,
                    band=True,
                ),
                Panel(
                    "Chunk execution time by agent",
                    f"{promql.CHUNK_EXECUTION.description} p95 and p99.",
                    (
                        Query(promql.quantile(0.95, promql.CHUNK_EXECUTION, ri, agent, where=w), "{{agent}} p95"),
                        Query(promql.quantile(0.99, promql.CHUNK_EXECUTION, ri, agent, where=w), "{{agent}} p99"),
                    ),
                    "s",
                    exemplars=True,
                ),
            ),
        ),
        Row(
            "Task outcomes",
            (
                Panel(
                    "Task successes and failures by stage",
                    f"{promql.TASK_SUCCESS.description} {promql.TASK_FAILURE.description} Per second.",
                    (
                        Query(promql.sum_rate(promql.TASK_SUCCESS, ri, stage, where=w), "{{stage}} succeeded"),
                        Query(
                            promql.sum_rate(promql.TASK_FAILURE, ri, ("stage", "reason"), where=w),
                            "{{stage}} failed: {{reason}}",
                        ),
                    ),
                    _PER_SECOND,
                ),
                Panel(
                    "Success rate by stage",
                    f"Succeeded / finished tasks, a ratio of rates. Target above {t.success_rate:.0%}; "
                    f"EddieHighFailureRate fires above {t.failure_ratio:.0%} failures."
                    + _band_text(failures, "the failure ratio of all stages (drawn as 1 - it, a success rate)"),
                    (
                        Query(promql.success_ratio(ri, stage, where=w), "{{stage}}"),
                        *anomaly_queries(failures, "all stages (5m)", complement=True),
                    ),
                    "percentunit",
                    max=1,
                    thresholds=("transparent", ((t.success_rate, "green"),)),
                    band=True,
                ),
                Panel(
                    "Chunk failures by agent",
                    _per_second(promql.CHUNK_FAILURE.description),
                    (
                        Query(
                            promql.sum_rate(promql.CHUNK_FAILURE, ri, ("agent", "reason"), where=w),
                            "{{agent}}: {{reason}}",
                        ),
                    ),
                    _PER_SECOND,
                ),
            ),
            widths=(8, 8, 8),
        ),
        Row(
            "Agents",
            (
                Panel(
                    "Active tasks by agent",
                    f"{promql.AGENT_ACTIVE_TASKS.description} Summed over instances.",
                    (
                        Query(
                            promql.aggregate("sum", promql.selector(promql.AGENT_ACTIVE_TASKS, w), agent), "{{agent}}"
                        ),
                    ),
                    "short",
                ),
                Panel(
                    "Tasks and chunks executed by agent",
                    _per_second(promql.AGENT_TASKS_EXECUTED.description),
                    (Query(promql.sum_rate(promql.AGENT_TASKS_EXECUTED, ri, agent, where=w), "{{agent}}"),),
                    _PER_SECOND,
                ),
                Panel(
                    "Agent balance",
                    "Executions of the busiest agent / of the least busy active one "
                    f"(1× is even). Target under {t.agent_balance:g}×.",
                    (Query(promql.agent_balance(ri, where=w), "busiest / least busy"),),
                    "suffix:×",
                    thresholds=("transparent", ((t.agent_balance, "red"),)),
                ),
            ),
            widths=(8, 8, 8),
        ),
        Row(
            "Docker containers",
            (
                Panel(
                    "Container CPU limit (cores)",
                    f"{promql.DOCKER_CPU_LIMIT.description} Shown in cores: the millicores recorded / 1000.",
                    (
                        Query(
                            promql.aggregate("max", promql.selector(promql.DOCKER_CPU_LIMIT, w), ("container",))
                            + " / 1000",
                            "{{container}}",
                        ),
                    ),
                    "suffix: cores",
                    decimals=2,
                ),
                Panel(
                    "Container memory limit",
                    promql.DOCKER_MEMORY_LIMIT.description,
                    (
                        Query(
                            promql.aggregate("max", promql.selector(promql.DOCKER_MEMORY_LIMIT, w), ("container",)),
                            "{{container}}",
                        ),
                    ),
                    "bytes",
                ),
                Panel(
                    "Elastic adjustments by container and type",
                    f"{promql.DOCKER_ELASTIC_ADJUSTMENT.description} Count per interval.",
                    (
                        Query(
                            promql.sum_increase(promql.DOCKER_ELASTIC_ADJUSTMENT, ri, ("container", "type"), where=w),
                            "{{container}} {{type}}",
                        ),
                    ),
                    "short",
                    bars=True,
                ),
            ),
            widths=(8, 8, 8),
        ),
        Row(
            "Merge and de-duplication",
            (
                Panel(
                    "Chunk results combined and duplicates removed",
                    f"{promql.MERGE_CHUNKS_COMBINED.description} {promql.MERGE_DEDUPLICATION.description} Per second.",
                    (
                        Query(promql.sum_rate(promql.MERGE_CHUNKS_COMBINED, ri, where=w), "combined"),
                        Query(promql.sum_rate(promql.MERGE_DEDUPLICATION, ri, where=w), "duplicates removed"),
                    ),
                    _PER_SECOND,
                ),
                Panel(
                    "Merge efficiency",
                    "1 − duplicates removed / chunk results combined, a ratio of rates. "
                    f"Target above {t.merge_efficiency:.0%}.",
                    (Query(promql.merge_efficiency(ri, where=w), "merge efficiency"),),
                    "percentunit",
                    max=1,
                    thresholds=("transparent", ((t.merge_efficiency, "green"),)),
                ),
            ),
        ),
        _error_budget_row(),
        # Last, so that the panels above keep their ids (the alerts' dashboard links name them).
        Row("Docker containers: usage against limits (eddie-otel docker-watch)", _docker_usage_panels(t)),
        Row("Timeouts", _timeout_panels()),
        Row("Fallback value", _fallback_value_panels(t), widths=(12, 12, 12, 12, 12, 12, 8, 8, 8)),
    )


def _fallback_value_panels(t: Thresholds) -> tuple[Panel, ...]:
    """What the fallback buys (split tasks rescued) and costs (chunk time, model cost, queue waits, saturation)."""
    ri, w, stage, agent = RATE_INTERVAL, FILTERS, ("stage",), ("agent",)
    return (
        Panel(
            "Split tasks rescued and failed by stage",
            f"{promql.TASK_FALLBACK.description} Per second.",
            (
                Query(promql.fallback_rate("rescued", ri, stage, where=w), "{{stage}} rescued"),
                Query(promql.fallback_rate("failed", ri, stage, where=w), "{{stage}} failed"),
            ),
            _PER_SECOND,
        ),
        Panel(
            "Rescue ratio by stage",
            "Rescued / finished split tasks, a ratio of rates: the share of the tasks split after a timeout "
            "that the fallback saved.",
            (Query(promql.rescue_ratio(ri, stage, where=w), "{{stage}}"),),
            "percentunit",
            max=1,
        ),
        Panel(
            "Fallback chunk-hours by stage",
            f"{promql.FALLBACK_CHUNK_SECONDS.description} In hours per interval.",
            (Query(promql.chunk_hours(ri, stage, where=w), "{{stage}}"),),
            "h",
            bars=True,
            decimals=2,
        ),
        Panel(
            "Cost per rescued task by stage",
            "Model cost of the chunks created by splits (those of tasks that failed in the end included) / split "
            "tasks rescued, in US dollars: what one rescue costs. Usage is priced from EDDIE_OTEL_PRICES_FILE.",
            (Query(promql.cost_per_rescued_task(ri, stage, where=w), "{{stage}}"),),
            "currencyUSD",
            decimals=4,
        ),
        Panel(
            "Chunk queue wait p95 by agent",
            f"{promql.CHUNK_QUEUE_WAIT.description} 95th percentile.",
            (Query(promql.quantile(0.95, promql.CHUNK_QUEUE_WAIT, ri, agent, where=w), "{{agent}}"),),
            "s",
        ),
        Panel(
            "Saturation by agent",
            "Tasks and chunks running / the capacity the agent said it has (agent_capacity), summed over "
            f"instances. EddieAgentSaturated fires above {t.agent_saturation:.0%} for {t.agent_saturation_for}.",
            (Query(promql.saturation(agent, where=w), "{{agent}}"),),
            "percentunit",
            thresholds=("transparent", ((t.agent_saturation, "red"),)),
        ),
        Panel(
            "Time since last seen by agent",
            f"{promql.AGENT_LAST_SEEN.description} Seconds since then, from the latest instance. EddieAgentSilent "
            f"fires above {t.agent_silent_seconds} s while the agent has running tasks.",
            (Query(promql.seconds_since_seen(agent, where=w), "{{agent}}"),),
            "s",
            thresholds=("transparent", ((t.agent_silent_seconds, "red"),)),
        ),
        Panel(
            "Model tokens by agent and type",
            _per_second(promql.AGENT_TOKENS.description),
            (
                Query(
                    promql.sum_rate(promql.AGENT_TOKENS, ri, ("agent", "model", "type"), where=w),
                    "{{agent}} · {{model}} {{type}}",
                ),
            ),
            _PER_SECOND,
        ),
        Panel(
            "Model cost by agent and model",
            f"{promql.AGENT_COST.description} US dollars per hour, summed over instances.",
            (
                Query(
                    f"{promql.sum_rate(promql.AGENT_COST, ri, ('agent', 'model'), where=w)} * 3600",
                    "{{agent}} · {{model}}",
                ),
            ),
            "currencyUSD",
            decimals=2,
        ),
    )


def _timeout_panels() -> tuple[Panel, ...]:
    """Each stage's timeout in use beside its p99 and the recommendations, and the share of tasks that hit it."""
    ri, w, stage = RATE_INTERVAL, FILTERS, ("stage",)
    finished = promql.either_sum(
        promql.sum_rate(TASK_SUCCESS, ri, stage, where=w), promql.sum_rate(TASK_FAILURE, ri, stage, where=w)
    )
    return (
        Panel(
            "Timeout in use, p99 and recommendation by stage",
            "The timeout each stage runs with (the largest any instance reports), the p99 of its task durations, "
            "and the largest recommendation of a process (from its last 1 000 successful durations; the fleet's, "
            "1.5 x the p99 over a day, is the recording rule eddie:task_timeout_recommended_seconds).",
            (
                Query(promql.aggregate("max", promql.selector(TASK_TIMEOUT, w), stage), "{{stage}} timeout"),
                Query(promql.quantile(0.99, TASK_EXECUTION, ri, stage, where=w), "{{stage}} p99"),
                Query(
                    promql.aggregate("max", promql.selector(TASK_TIMEOUT_RECOMMENDED, w), stage),
                    "{{stage}} recommended (process)",
                ),
            ),
            "s",
        ),
        Panel(
            "Timeout hit share by stage",
            "Timeouts of a stage over its finished tasks (successes and failures). Above 5 % the timeout is "
            "too tight (EddieTimeoutTooTight, with a p99 near the timeout).",
            (Query(f"{promql.sum_rate(TIMEOUT_EVENTS, ri, stage, where=w)} / ({finished})", "{{stage}}"),),
            "percentunit",
            max=1,
            thresholds=("transparent", ((0.05, "red"),)),
        ),
    )
