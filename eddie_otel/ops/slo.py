"""Burn-rate alerting on the service-level objectives: recording rules and multi-window, multi-burn-rate alerts.

The objectives themselves are data in `eddie_otel.objectives`. Here each one
becomes a "bad ratio" (failed tasks, or tasks slower than the latency bound,
over finished tasks) recorded over every window the alerts read, and two
alerting rules (Google SRE workbook, chapter "Alerting on SLOs"): a page when
the error budget burns fast, a ticket when it burns slowly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eddie_otel.objectives import OBJECTIVES, Objective
from eddie_otel.ops import promql
from eddie_otel.ops.rule import Recording, Rule

__all__ = [
    "BURN_RATES",
    "BY",
    "WINDOWS",
    "BurnRate",
    "bad_ratio",
    "budget_remaining",
    "burn_rate",
    "burn_rate_rules",
    "inline",
    "le_matcher",
    "panel_titles",
    "record_name",
    "recording_rules",
]

# Every window an alert below reads, shortest first: recorded once, read by both alerts of an objective.
WINDOWS: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# Summed across instances, kept per scrape job: an alert carries the job its endpoint-down alert inhibits on.
BY: tuple[str, ...] = ("job",)


@dataclass(frozen=True)
class BurnRate:
    """Fire when the bad ratio exceeds `factor` times the error budget over both `long` and `short`."""

    severity: str
    factor: float
    long: str
    short: str


# The SRE workbook's pairs for a 30-day period: 14.4x spends 2 % of the budget in an hour,
# 6x spends 5 % in six hours (both page); 3x spends 10 % in a day, 1x all of it in 30 days
# (both a ticket). The short window (1/12 of the long one) ends the alert soon after the burn stops.
BURN_RATES: tuple[BurnRate, ...] = (
    BurnRate("critical", 14.4, "1h", "5m"),
    BurnRate("critical", 6.0, "6h", "30m"),
    BurnRate("warning", 3.0, "1d", "2h"),
    BurnRate("warning", 1.0, "3d", "6h"),
)
# A page waits two evaluations of a clear burn; a ticket can wait a quarter of an hour.
_FOR = {"critical": "2m", "warning": "15m"}
_PERIOD_DAYS = {"30d": 30}


# Prometheus 2 keeps `le` as the exposition writes it ("60.0" from the OpenTelemetry exporter,
# "60" from others); Prometheus 3 normalises it to "60.0". Both match.
def le_matcher(seconds: float) -> str:
    """The label matcher of the bucket boundary `seconds`, whichever way `le` is written."""
    return f'{{le=~"{seconds:g}|{seconds:g}[.]0"}}'


def _kind(objective: Objective) -> str:
    return "task_errors" if objective.latency_seconds is None else "task_slow"


def record_name(objective: Objective, window: str) -> str:
    """The recorded series of `objective`'s bad ratio over `window` (eddie:task_errors:ratio_rate5m)."""
    return f"eddie:{_kind(objective)}:ratio_rate{window}"


def bad_ratio(objective: Objective, window: str, by: tuple[str, ...] = BY, *, where: promql.Where = None) -> str:
    """Bad tasks / finished tasks over `window`: failed ones, or for a latency objective the slower ones."""
    if objective.latency_seconds is None:
        # 1 - success ratio: 0 (not "no data") when tasks finished and none failed.
        return f"1 - ({promql.success_ratio(window, by, where=where)})"
    metric = promql.TASK_EXECUTION
    le = le_matcher(objective.latency_seconds)[1:-1]
    fast = promql.aggregate("sum", f"rate({promql.selector(metric, where, '_bucket', (le,))}[{window}])", by)
    finished = promql.aggregate("sum", f"rate({promql.selector(metric, where, '_count')}[{window}])", by)
    return f"1 - ({promql.ratio(fast, finished)})"


def recording_rules(objectives: tuple[Objective, ...] = OBJECTIVES) -> list[Recording]:
    """The recording rules the burn-rate alerts read: each objective's bad ratio over every window."""
    return [
        Recording(record_name(objective, window), bad_ratio(objective, window))
        for objective in objectives
        for window in WINDOWS
    ]


def _threshold(objective: Objective, factor: float) -> str:
    return f"{round(factor * objective.error_budget, 10):g}"


def _spoken(window: str) -> str:
    units = {"m": "min", "h": "h", "d": "d"}
    return f"{window[:-1]} {units[window[-1]]}"


def _days_left(factor: float, objective: Objective) -> str:
    return f"{_PERIOD_DAYS[objective.period] / factor:.3g} days"


def panel_titles(objective: Objective) -> tuple[str, str]:
    """The titles of `objective`'s two dashboard panels: budget remaining, burn rate."""
    what = "Task success" if objective.latency_seconds is None else "Task latency"
    return f"{what}: error budget left ({objective.period})", f"{what}: burn rate"


def burn_rate_rules(objectives: tuple[Objective, ...] = OBJECTIVES) -> list[Rule]:
    """One critical and one warning alert per objective, each the OR of its two window pairs."""
    rules = []
    for objective in objectives:
        budget = f"{objective.error_budget:.0%}"
        bad = "failed" if objective.latency_seconds is None else f"took longer than {objective.latency_seconds:g} s"
        for severity in ("critical", "warning"):
            pairs = [burn for burn in BURN_RATES if burn.severity == severity]
            expr = " or ".join(
                f"({record_name(objective, b.long)} > {_threshold(objective, b.factor)}"
                f" and {record_name(objective, b.short)} > {_threshold(objective, b.factor)})"
                for b in pairs
            )
            conditions = " or ".join(f"{b.factor:g}× over {_spoken(b.long)} and {_spoken(b.short)}" for b in pairs)
            fastest = pairs[0]
            speed = "fast" if severity == "critical" else "slowly"
            rules.append(
                Rule(
                    alert=objective.alert,
                    expr=expr,
                    for_=_FOR[severity],
                    severity=severity,
                    summary=(
                        f"Job {{{{ $labels.job }}}} burns the {_PERIOD_DAYS[objective.period]}-day error budget of "
                        f"{objective.name} {speed}"
                    ),
                    description=(
                        f"{{{{ $value | humanizePercentage }}}} of finished tasks {bad} over the last "
                        f"{' or '.join(_spoken(b.long) for b in pairs)} (objective {objective.objective:.0%}, "
                        f"error budget {budget}): a burn rate of {conditions}. At {fastest.factor:g}× the whole "
                        f"{_PERIOD_DAYS[objective.period]}-day budget is spent in "
                        f"{_days_left(fastest.factor, objective)}."
                    ),
                    panel=panel_titles(objective)[1],
                )
            )
    return rules


def burn_rate(objective: Objective, window: str, by: tuple[str, ...] = (), *, where: promql.Where = None) -> str:
    """How fast `objective`'s error budget burns over `window`: 1 spends exactly the budget in the period."""
    return f"({bad_ratio(objective, window, by, where=where)}) / {objective.error_budget:g}"


def budget_remaining(objective: Objective, by: tuple[str, ...] = (), *, where: promql.Where = None) -> str:
    """The share of `objective`'s error budget left over its period (1 = untouched, below 0 = overspent)."""
    return f"1 - ({bad_ratio(objective, objective.period, by, where=where)}) / {objective.error_budget:g}"


_RECORDED = re.compile(r"eddie:task_(?:errors|slow):ratio_rate\w+")


def inline(expr: str, objectives: tuple[Objective, ...] = OBJECTIVES) -> str:
    """`expr` with every recorded series replaced by the expression it records (for Grafana-managed rules)."""
    recorded = {rule.record: rule.expr for rule in recording_rules(objectives)}
    return _RECORDED.sub(lambda match: f"({recorded[match.group(0)]})", expr)
