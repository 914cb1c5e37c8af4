"""Reading a dashboard back: every panel's PromQL, its panels' ids by title, and Grafana's variables replaced
for Prometheus itself."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from eddie_otel.ops.dashboard.panels import RANGE, RATE_INTERVAL, VARIABLES
from eddie_otel.ops.promql import duration_seconds

__all__ = ["expand_variables", "panel_ids", "panel_queries"]


def _panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # A collapsed row keeps its panels inside it.
        yield from _panels(panel.get("panels", []))


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every target of every panel, rows' nested panels included."""
    return [
        (str(panel.get("title", "")), str(target["expr"]))
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
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
