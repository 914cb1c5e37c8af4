"""One Prometheus rule as data: an alerting rule or a recording rule, before it is written as YAML."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Recording", "Rule"]


@dataclass(frozen=True)
class Rule:
    """One Prometheus alerting rule; `for_` is the rule's `for` duration, `panel` the dashboard panel it points at.

    `labels` are labels beyond `severity` (name, value), which tell apart rules of the same alert name.
    """

    alert: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    panel: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Recording:
    """One Prometheus recording rule: `record` is the name of the series `expr` is stored as."""

    record: str
    expr: str
