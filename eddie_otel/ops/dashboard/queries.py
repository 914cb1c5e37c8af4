"""Reading a dashboard back: every panel's PromQL, its panels' ids by title, and Grafana's variables replaced
for Prometheus itself."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from eddie_otel.ops.dashboard.panels import RANGE, RATE_INTERVAL, VARIABLES, WEEK_OF_HISTORY
from eddie_otel.ops.promql import duration_seconds

__all__ = ["expand_variables", "needs_history", "panel_ids", "panel_queries"]


def _panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # A collapsed row keeps its panels inside it.
        yield from _panels(panel.get("panels", []))


def needs_history(expr: str) -> bool:
    """Whether `expr` reads a series that exists only after a week of recordings (`WEEK_OF_HISTORY`: the
    anomaly bands), so returns nothing on a Prometheus younger than that."""
    return any(re.search(rf"\b{re.escape(name)}\b", expr) for name in WEEK_OF_HISTORY)


def panel_queries(dashboard: dict[str, Any], *, history: bool = False) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every target of every panel, rows' nested panels included.

    Without `history`, not the targets that need a week of recordings (`needs_history`, the anomaly bands):
    every other query gives data as soon as Prometheus has scraped a few minutes of the metrics.
    With it, every target.
    """
    return [
        (str(panel.get("title", "")), str(target["expr"]))
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target and (history or not needs_history(str(target["expr"])))
    ]


def panel_ids(dashboard: dict[str, Any]) -> dict[str, int]:
    """Panel title → panel id, rows left out; where a time series and a stat share a title, the time series."""
    ids: dict[str, int] = {}
    timeseries: set[str] = set()
    for panel in _panels(dashboard.get("panels", [])):
        title, kind = str(panel.get("title", "")), panel["type"]
        if kind == "row" or title in timeseries:
            continue
        if title not in ids or kind == "timeseries":
            ids[title] = int(panel["id"])
        if kind == "timeseries":
            timeseries.add(title)
    return ids


def expand_variables(expr: str, *, rate_interval: str = "1m", range_: str = "1h") -> str:
    """`expr` with Grafana's `$__rate_interval`, `$__range` and `$__range_s` (the range in seconds) replaced,
    and every template variable (`$job`, `$instance`, `$agent`, `$stage`) set to All (`.*`): ready to send
    to Prometheus itself."""
    seconds = f"{duration_seconds(range_):g}"
    expanded = expr.replace(RATE_INTERVAL, rate_interval).replace(RANGE + "_s", seconds).replace(RANGE, range_)
    for name, _, _ in VARIABLES:
        expanded = expanded.replace(f'"${name}"', '".*"')
    return expanded
