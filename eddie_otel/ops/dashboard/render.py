"""The dashboard as JSON: the rows of `panels` laid out the way Grafana 10/11 saves a dashboard.

`render_dashboard()` is the file committed as dashboards/distributed-fallback-dashboard.json;
`python -m eddie_otel.ops.generate` rewrites it and a test checks it is current.

Plain dictionaries rather than the grafana-foundation-sdk builders: the SDK release
available here (10.1) writes schemaVersion 36 with the removed `style` field,
`"options": null` on panels and no panel ids, which Grafana 10/11 has to migrate
or patch on load. The JSON below is what Grafana 10/11 itself saves.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from eddie_otel.ops.dashboard.panels import BAND, BAND_LOW, VARIABLES, Panel, Query, Row, rows
from eddie_otel.ops.dashboard.queries import panel_ids
from eddie_otel.ops.thresholds import THRESHOLDS, Thresholds

__all__ = ["DATASOURCE", "TITLE", "UID", "build_dashboard", "dashboard_panel_ids", "render_dashboard"]

UID = "eddie-distributed-fallback"
TITLE = "Eddie · distributed fallback"
# Every panel and target queries the data source chosen in the `datasource` variable.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
# The trace data source an exemplar's trace opens in, chosen in the `traces` variable.
TRACES_VARIABLE = "traces"
TRACE_LINK: dict[str, Any] = {
    "title": "Open trace ${__data.fields.trace_id}",
    "url": (
        '/explore?left={"datasource":"${traces}","queries":[{"refId":"A","datasource":{"uid":"${traces}"},'
        '"queryType":"traceql","query":"${__data.fields.trace_id}"}],"range":{"from":"now-1h","to":"now"}}'
    ),
}

# The anomaly band: one colour, thin dashed edges, the upper edge filled down to the lower one.
_BAND_COLOR = "#8AB8FF"
_BAND_EDGE: list[dict[str, Any]] = [
    {"id": "color", "value": {"fixedColor": _BAND_COLOR, "mode": "fixed"}},
    {"id": "custom.lineStyle", "value": {"dash": [4, 4], "fill": "dash"}},
    {"id": "custom.lineWidth", "value": 1},
]

_TIMESERIES_HEIGHT = 8
_STAT_HEIGHT = 4
_WIDTH = 24


def _thresholds(spec: tuple[str, tuple[tuple[float, str], ...]]) -> dict[str, Any]:
    base, steps = spec
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": color, "value": value} for value, color in steps)],
    }


def _target(query: Query, ref_id: str, instant: bool, exemplar: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "exemplar": exemplar,
        "expr": query.expr,
        "instant": instant,
        "range": not instant,
        "refId": ref_id,
    }
    if query.legend:
        target["legendFormat"] = query.legend
    return target


def _band_overrides() -> list[dict[str, Any]]:
    """Grafana field overrides (by series name) that draw BAND down to BAND_LOW as one shaded band."""
    return [
        {
            "matcher": {"id": "byName", "options": BAND},
            "properties": [
                *_BAND_EDGE,
                {"id": "custom.fillBelowTo", "value": BAND_LOW},
                {"id": "custom.fillOpacity", "value": 15},
            ],
        },
        {
            "matcher": {"id": "byName", "options": BAND_LOW},
            "properties": [
                *_BAND_EDGE,
                {"id": "custom.fillOpacity", "value": 0},
                {"id": "custom.hideFrom", "value": {"legend": True, "tooltip": False, "viz": False}},
            ],
        },
    ]


def _panel_json(panel: Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
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
    if panel.exemplars:
        defaults["links"] = [TRACE_LINK]
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": _band_overrides() if panel.band else []},
        "gridPos": grid,
        "id": panel_id,
        "options": options,
        "targets": [
            _target(query, chr(ord("A") + index), instant, panel.exemplars) for index, query in enumerate(panel.queries)
        ],
        "title": panel.title,
        "type": panel.kind,
    }


def _layout(rows: Sequence[Row]) -> Iterator[dict[str, Any]]:
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


def _query_variable(name: str, metric: str, label: str) -> dict[str, Any]:
    # The variables before `name` narrow its values: pick a job and the instances list shrinks to its own.
    before = [
        other for other, _, _ in VARIABLES[: [v[0] for v in VARIABLES].index(name)] if other in ("job", "instance")
    ]
    matchers = ", ".join(f'{other}=~"${other}"' for other in before)
    query = f"label_values({metric}{{{matchers}}}, {label})" if matchers else f"label_values({metric}, {label})"
    return {
        # `.*` rather than the list of values Grafana knows: a new instance or agent shows without a reload.
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": name.capitalize(),
        "multi": True,
        "name": name,
        "options": [],
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


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
        "panels": list(_layout(rows(thresholds))),
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
                },
                *(_query_variable(name, metric, label) for name, metric, label in VARIABLES),
                {
                    "current": {},
                    "description": "Where the exemplars of the latency panels open their trace",
                    "hide": 0,
                    "includeAll": False,
                    "label": "Traces",
                    "multi": False,
                    "name": TRACES_VARIABLE,
                    "options": [],
                    "query": "tempo",
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                    "type": "datasource",
                },
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


@functools.cache
def dashboard_panel_ids() -> Mapping[str, int]:
    """Panel title → id in the dashboard, built once (the alerts' dashboard links read one per rule).

    The layout does not depend on the thresholds, so these are the ids of any `build_dashboard(thresholds)`.
    """
    return MappingProxyType(panel_ids(build_dashboard()))
