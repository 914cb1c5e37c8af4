"""The Grafana dashboard, generated from the catalogue as plain JSON.

`panels` holds the content (rows, panels, PromQL), `render` the JSON Grafana loads,
`queries` the helpers that read a dashboard's queries and panel ids back.
"""

from __future__ import annotations

from eddie_otel.ops.dashboard.panels import RANGE, RATE_INTERVAL, WEEK_OF_HISTORY
from eddie_otel.ops.dashboard.queries import expand_variables, needs_history, panel_ids, panel_queries
from eddie_otel.ops.dashboard.render import (
    DATASOURCE,
    TITLE,
    UID,
    build_dashboard,
    dashboard_panel_ids,
    render_dashboard,
)

__all__ = [
    "DATASOURCE",
    "RANGE",
    "RATE_INTERVAL",
    "TITLE",
    "UID",
    "WEEK_OF_HISTORY",
    "build_dashboard",
    "dashboard_panel_ids",
    "expand_variables",
    "needs_history",
    "panel_ids",
    "panel_queries",
    "render_dashboard",
]
