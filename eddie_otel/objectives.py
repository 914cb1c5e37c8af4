"""The success indicators' targets: the one place each target lives.

The summary judges its indicators against these, and the dashboard's thresholds
and the alert rules read them from here (docs/contract.md §4). The service-level
objectives of docs/contract.md §10 hold two of these targets over 30 days; the
burn-rate rules, the error-budget panels and the sloth/OpenSLO export read them here.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["INDICATORS", "OBJECTIVES", "Objective", "Target", "target"]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Target:
    """An indicator's target: `value op threshold` must hold."""

    name: str
    op: str
    threshold: float
    why: str

    def met(self, value: float) -> bool:
        """Whether `value` meets the target."""
        return _OPERATORS[self.op](value, self.threshold)


INDICATORS: tuple[Target, ...] = (
    Target("success_rate", ">=", 0.95, "at most one task in twenty fails, timeouts included"),
    Target(
        "latency_p99_seconds",
        "<",
        60.0,
        "99 % of tasks finish within a minute; 60 s is a bucket boundary, so the check is exact",
    ),
    Target("timeouts_per_hour", "<", 5.0, "a few timeouts are what the fallback exists for; more is a fault"),
    Target(
        "merge_efficiency",
        ">",
        0.90,
        "at most one merged chunk result in ten is a duplicate: overlapping chunks waste little work",
    ),
    Target("agent_balance_ratio", "<", 2.0, "the busiest agent does at most twice the work of the least busy one"),
)

_BY_NAME = {indicator.name: indicator for indicator in INDICATORS}


def target(name: str) -> Target:
    """The target of the indicator `name`; KeyError when there is none."""
    return _BY_NAME[name]


@dataclass(frozen=True)
class Objective:
    """A service-level objective: over `period`, at least `objective` of finished tasks must be good."""

    name: str
    alert: str
    objective: float
    description: str
    # A task slower than this many seconds is bad for a latency objective; None: a failed task is bad.
    latency_seconds: float | None = None
    period: str = "30d"

    @property
    def error_budget(self) -> float:
        """The share of tasks allowed to be bad over the period (1 - objective)."""
        return round(1 - self.objective, 10)


# The success-indicator targets, held over 30 days: the same numbers, not a copy of them.
OBJECTIVES: tuple[Objective, ...] = (
    Objective(
        "task-success",
        "EddieTaskSuccessBudgetBurn",
        target("success_rate").threshold,
        "Finished tasks that succeed (timeouts and errors count as failures).",
    ),
    Objective(
        "task-latency",
        "EddieTaskLatencyBudgetBurn",
        0.99,
        f"Tasks that finish within {target('latency_p99_seconds').threshold:g} s "
        "(60 s is a bucket boundary of task_execution_seconds, so the count is exact).",
        latency_seconds=target("latency_p99_seconds").threshold,
    ),
)
