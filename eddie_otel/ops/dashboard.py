"""The Grafana dashboard, generated from the catalogue as plain JSON.

`render_dashboard()` is the file committed as dashboards/distributed-fallback-dashboard.json;
`python -m eddie_otel.ops.generate` rewrites it and a test checks it is current.

Plain dictionaries rather than the grafana-foundation-sdk builders: the SDK release
available here (10.1) writes schemaVersion 36 with the removed `style` field,
`"options": null` on panels and no panel ids, which Grafana 10/11 has to migrate
or patch on load. The JSON below is what Grafana 10/11 itself saves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eddie_otel.ops import promql
from eddie_otel.ops.alerts import THRESHOLDS, Thresholds

__all__ = [
    "DATASOURCE",
    "RANGE",
    "RATE_INTERVAL",
    "TITLE",
    "UID",
    "build_dashboard",
    "expand_variables",
    "panel_queries",
    "render_dashboard",
]

UID = "eddie-distributed-fallback"
TITLE = "Eddie · distributed fallback"
# Every panel and target queries the data source chosen in the `datasource` variable.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's window for rate(): at least four scrape intervals, so every window holds enough samples.
RATE_INTERVAL = "$__rate_interval"
# The dashboard's time range: the success indicators summarise all of it.
RANGE = "$__range"

_TIMESERIES_HEIGHT = 8
_STAT_HEIGHT = 4
_WIDTH = 24
_PER_SECOND = "suffix:/s"


@dataclass(frozen=True)
class _Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class _Panel:
    title: str
    description: str
    queries: tuple[_Query, ...]
    unit: str
    kind: str = "timeseries"
    bars: bool = False
    # Ratios are bounded; everything else starts at zero.
    max: float | None = None
    # (base colour, [(value, colour), ...]): stat colours, or a dashed line on a time series.
    thresholds: tuple[str, tuple[tuple[float, str], ...]] | None = None
    decimals: int | None = None


@dataclass(frozen=True)
class _Row:
    title: str
    panels: tuple[_Panel, ...]
    widths: tuple[int, ...] = field(default=())


def _per_second(metric_description: str) -> str:
    return f"{metric_description} Per second, summed over instances."


def _indicator_row(t: Thresholds) -> _Row:
    return _Row(
        "Success indicators (over the dashboard's time range)",
        (
            _Panel(
                "Success rate",
                f"Succeeded tasks / finished tasks. Target above {t.success_rate:.0%}.",
                (_Query(promql.success_ratio(RANGE)),),
                "percentunit",
                kind="stat",
                thresholds=("red", ((t.success_rate, "green"),)),
                decimals=1,
            ),
            _Panel(
                "Latency p99",
                f"99th percentile of task execution time. Target under {t.latency_p99_seconds:g} s.",
                (_Query(promql.quantile(0.99, promql.TASK_EXECUTION, RANGE)),),
                "s",
                kind="stat",
                thresholds=("green", ((t.latency_p99_seconds, "red"),)),
                decimals=1,
            ),
            _Panel(
                "Timeouts per hour",
                f"Timeouts across all agents, per hour. Target under {t.timeouts_per_hour:g}.",
                (_Query(promql.timeouts_per_hour(RANGE)),),
                "short",
                kind="stat",
                thresholds=("green", ((t.timeouts_per_hour, "red"),)),
                decimals=1,
            ),
            _Panel(
                "Merge efficiency",
                f"1 − duplicates removed / chunk results combined. Target above {t.merge_efficiency:.0%}.",
                (_Query(promql.merge_efficiency(RANGE)),),
                "percentunit",
                kind="stat",
                thresholds=("red", ((t.merge_efficiency, "green"),)),
                decimals=1,
            ),
            _Panel(
                "Agent balance",
                "Tasks and chunks executed by the busiest agent / by the least busy active one. "
                f"Target under {t.agent_balance:g}×.",
                (_Query(promql.agent_balance(RANGE)),),
                "suffix:×",
                kind="stat",
                thresholds=("green", ((t.agent_balance, "red"),)),
                decimals=2,
            ),
        ),
        widths=(5, 5, 5, 5, 4),
    )


def _rows(t: Thresholds) -> tuple[_Row, ...]:
    ri = RATE_INTERVAL
    agent, stage = ("agent",), ("stage",)
    return (
        _indicator_row(t),
        _Row(
            "Fallback: splits, timeouts, depth",
            (
                _Panel(
                    "Task splits by agent",
                    _per_second(promql.TASK_SPLIT.description),
                    (_Query(promql.sum_rate(promql.TASK_SPLIT, ri, agent), "{{agent}}"),),
                    _PER_SECOND,
                ),
                _Panel(
                    "Chunks created by agent",
                    _per_second(promql.TASK_SPLIT_CHUNKS.description),
                    (_Query(promql.sum_rate(promql.TASK_SPLIT_CHUNKS, ri, agent), "{{agent}}"),),
                    _PER_SECOND,
                ),
                _Panel(
                    "Chunks per split by agent",
                    "Chunks created / splits: how finely timed-out work is cut.",
                    (
                        _Query(
                            promql.ratio(
                                promql.sum_rate(promql.TASK_SPLIT_CHUNKS, ri, agent),
                                promql.sum_rate(promql.TASK_SPLIT, ri, agent),
                            ),
                            "{{agent}}",
                        ),
                    ),
                    "short",
                ),
                _Panel(
                    "Timeout events by agent and stage",
                    _per_second(promql.TIMEOUT_EVENTS.description),
                    (_Query(promql.sum_rate(promql.TIMEOUT_EVENTS, ri, ("agent", "stage")), "{{agent}} · {{stage}}"),),
                    _PER_SECOND,
                ),
                _Panel(
                    "Fallback depth violations by agent",
                    f"{promql.FALLBACK_DEPTH_EXCEEDED.description} Count per interval; any one fires "
                    "EddieFallbackDepthExceeded.",
                    (_Query(promql.sum_increase(promql.FALLBACK_DEPTH_EXCEEDED, ri, agent), "{{agent}}"),),
                    "short",
                    bars=True,
                ),
            ),
            widths=(8, 8, 8, 12, 12),
        ),
        _Row(
            "Latency",
            (
                _Panel(
                    "Task execution time by stage",
                    f"{promql.TASK_EXECUTION.description} p95, p99 and mean. "
                    f"The p99 target is under {t.latency_p99_seconds:g} s.",
                    (
                        _Query(promql.quantile(0.95, promql.TASK_EXECUTION, ri, stage), "{{stage}} p95"),
                        _Query(promql.quantile(0.99, promql.TASK_EXECUTION, ri, stage), "{{stage}} p99"),
                        _Query(promql.mean(promql.TASK_EXECUTION, ri, stage), "{{stage}} mean"),
                    ),
                    "s",
                    thresholds=("transparent", ((t.latency_p99_seconds, "red"),)),
                ),
                _Panel(
                    "Chunk execution time by agent",
                    f"{promql.CHUNK_EXECUTION.description} p95 and p99.",
                    (
                        _Query(promql.quantile(0.95, promql.CHUNK_EXECUTION, ri, agent), "{{agent}} p95"),
                        _Query(promql.quantile(0.99, promql.CHUNK_EXECUTION, ri, agent), "{{agent}} p99"),
                    ),
                    "s",
                ),
            ),
        ),
        _Row(
            "Task outcomes",
            (
                _Panel(
                    "Task successes and failures by stage",
                    f"{promql.TASK_SUCCESS.description} {promql.TASK_FAILURE.description} Per second.",
                    (
                        _Query(promql.sum_rate(promql.TASK_SUCCESS, ri, stage), "{{stage}} succeeded"),
                        _Query(
                            promql.sum_rate(promql.TASK_FAILURE, ri, ("stage", "reason")),
                            "{{stage}} failed: {{reason}}",
                        ),
                    ),
                    _PER_SECOND,
                ),
                _Panel(
                    "Success rate by stage",
                    f"Succeeded / finished tasks, a ratio of rates. Target above {t.success_rate:.0%}; "
                    f"EddieHighFailureRate fires above {t.failure_ratio:.0%} failures.",
                    (_Query(promql.success_ratio(ri, stage), "{{stage}}"),),
                    "percentunit",
                    max=1,
                    thresholds=("transparent", ((t.success_rate, "green"),)),
                ),
            ),
        ),
        _Row(
            "Agents",
            (
                _Panel(
                    "Active tasks by agent",
                    f"{promql.AGENT_ACTIVE_TASKS.description} Summed over instances.",
                    (_Query(promql.aggregate("sum", promql.AGENT_ACTIVE_TASKS.prometheus_name, agent), "{{agent}}"),),
                    "short",
                ),
                _Panel(
                    "Tasks and chunks executed by agent",
                    _per_second(promql.AGENT_TASKS_EXECUTED.description),
                    (_Query(promql.sum_rate(promql.AGENT_TASKS_EXECUTED, ri, agent), "{{agent}}"),),
                    _PER_SECOND,
                ),
                _Panel(
                    "Agent balance",
                    "Executions of the busiest agent / of the least busy active one "
                    f"(1× is even). Target under {t.agent_balance:g}×.",
                    (_Query(promql.agent_balance(ri), "busiest / least busy"),),
                    "suffix:×",
                    thresholds=("transparent", ((t.agent_balance, "red"),)),
                ),
            ),
            widths=(8, 8, 8),
        ),
        _Row(
            "Docker containers",
            (
                _Panel(
                    "Container CPU limit",
                    f"{promql.DOCKER_CPU_LIMIT.description} Shown in cores (millicores / 1000).",
                    (
                        _Query(
                            promql.aggregate("max", promql.DOCKER_CPU_LIMIT.prometheus_name, ("container",))
                            + " / 1000",
                            "{{container}}",
                        ),
                    ),
                    "short",
                ),
                _Panel(
                    "Container memory limit",
                    promql.DOCKER_MEMORY_LIMIT.description,
                    (
                        _Query(
                            promql.aggregate("max", promql.DOCKER_MEMORY_LIMIT.prometheus_name, ("container",)),
                            "{{container}}",
                        ),
                    ),
                    "bytes",
                ),
                _Panel(
                    "Elastic adjustments by container and type",
                    f"{promql.DOCKER_ELASTIC_ADJUSTMENT.description} Count per interval.",
                    (
                        _Query(
                            promql.sum_increase(promql.DOCKER_ELASTIC_ADJUSTMENT, ri, ("container", "type")),
                            "{{container}} {{type}}",
                        ),
                    ),
                    "short",
                    bars=True,
                ),
            ),
            widths=(8, 8, 8),
        ),
        _Row(
            "Merge and de-duplication",
            (
                _Panel(
                    "Chunk results combined and duplicates removed",
                    f"{promql.MERGE_CHUNKS_COMBINED.description} {promql.MERGE_DEDUPLICATION.description} Per second.",
                    (
                        _Query(promql.sum_rate(promql.MERGE_CHUNKS_COMBINED, ri), "combined"),
                        _Query(promql.sum_rate(promql.MERGE_DEDUPLICATION, ri), "duplicates removed"),
                    ),
                    _PER_SECOND,
                ),
                _Panel(
                    "Merge efficiency",
                    "1 − duplicates removed / chunk results combined, a ratio of rates. "
                    f"Target above {t.merge_efficiency:.0%}.",
                    (_Query(promql.merge_efficiency(ri), "merge efficiency"),),
                    "percentunit",
                    max=1,
                    thresholds=("transparent", ((t.merge_efficiency, "green"),)),
                ),
            ),
        ),
    )


def _thresholds(spec: tuple[str, tuple[tuple[float, str], ...]]) -> dict[str, Any]:
    base, steps = spec
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": color, "value": value} for value, color in steps)],
    }


def _target(query: _Query, ref_id: str, instant: bool) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "instant": instant,
        "range": not instant,
        "refId": ref_id,
    }
    if query.legend:
        target["legendFormat"] = query.legend
    return target


def _panel_json(panel: _Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    instant = panel.kind == "stat"
    defaults: dict[str, Any] = {"unit": panel.unit, "min": 0}
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if instant:
        assert panel.thresholds is not None, panel.title
        defaults["color"] = {"mode": "thresholds"}
        defaults["thresholds"] = _thresholds(panel.thresholds)
        options: dict[str, Any] = {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "center",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value",
        }
    else:
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 60 if panel.bars else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "off" if panel.thresholds is None else "dashed"},
        }
        defaults["thresholds"] = _thresholds(panel.thresholds or ("green", ()))
        options = {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": grid,
        "id": panel_id,
        "options": options,
        "targets": [_target(query, chr(ord("A") + index), instant) for index, query in enumerate(panel.queries)],
        "title": panel.title,
        "type": panel.kind,
    }


def _layout(rows: Sequence[_Row]) -> Iterator[dict[str, Any]]:
    panel_id, y = 0, 0
    for row in rows:
        panel_id += 1
        yield {
            "collapsed": False,
            "gridPos": {"h": 1, "w": _WIDTH, "x": 0, "y": y},
            "id": panel_id,
            "panels": [],
            "title": row.title,
            "type": "row",
        }
        y += 1
        widths = row.widths or (_WIDTH // 2,) * len(row.panels)
        x, line_height = 0, 0
        for panel, width in zip(row.panels, widths, strict=True):
            if x + width > _WIDTH:
                x, y = 0, y + line_height
            height = _STAT_HEIGHT if panel.kind == "stat" else _TIMESERIES_HEIGHT
            panel_id += 1
            yield _panel_json(panel, panel_id, {"h": height, "w": width, "x": x, "y": y})
            x, line_height = x + width, height
        y += line_height


def build_dashboard(thresholds: Thresholds = THRESHOLDS) -> dict[str, Any]:
    """The Grafana dashboard (uid `eddie-distributed-fallback`) as a JSON-ready dict."""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Eddie distributed-fallback agents: splits, timeouts, latency, outcomes, agents, "
        "containers and merges, with the five success indicators. Generated by eddie-otel.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": list(_layout(_rows(thresholds))),
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["eddie", "opentelemetry", "distributed-fallback"],
        "templating": {
            "list": [
                {
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "label": "Data source",
                    "multi": False,
                    "name": "datasource",
                    "options": [],
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                    "type": "datasource",
                }
            ]
        },
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


def render_dashboard(thresholds: Thresholds = THRESHOLDS) -> str:
    """The dashboard as the JSON text committed to the repository (stable key order, trailing newline)."""
    return json.dumps(build_dashboard(thresholds), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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


def expand_variables(expr: str, *, rate_interval: str = "1m", range_: str = "1h") -> str:
    """`expr` with Grafana's `$__rate_interval` and `$__range` replaced, ready to send to Prometheus itself."""
    return expr.replace(RATE_INTERVAL, rate_interval).replace(RANGE, range_)
