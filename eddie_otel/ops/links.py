"""Where an alert's annotations point: its runbook section and its dashboard panel, under configurable base URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_GRAFANA_BASE_URL", "DEFAULT_RUNBOOK_BASE_URL", "Links", "panel_id"]

# The runbooks' path in the eddie-otel source tree, relative to its root: true wherever the source is,
# but a link no browser can follow. eddie-otel publishes them nowhere, so in production pass
# --runbook-base-url with the address where your copy of docs/runbooks.md is served.
DEFAULT_RUNBOOK_BASE_URL = "docs/runbooks.md"
# Grafana of `eddie-otel stack`.
DEFAULT_GRAFANA_BASE_URL = "http://127.0.0.1:3000"


def panel_id(dashboard: dict[str, Any], title: str) -> int:
    """The id of the panel titled `title`; a time series wins over a stat of the same title."""
    matches = [panel for panel in dashboard["panels"] if panel.get("title") == title and panel["type"] != "row"]
    if not matches:
        raise ValueError(f"the dashboard has no panel titled {title!r}")
    matches.sort(key=lambda panel: panel["type"] != "timeseries")
    return int(matches[0]["id"])


@dataclass(frozen=True)
class Links:
    """Base URLs of the runbooks (a Markdown file, sections by alert name) and of Grafana."""

    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    grafana_base_url: str = DEFAULT_GRAFANA_BASE_URL

    def runbook(self, alert: str) -> str:
        """The runbook section of `alert`: a `## AlertName` heading, whose anchor is the lowercased name."""
        return f"{self.runbook_base_url}#{alert.lower()}"

    def dashboard(self, panel: str) -> str:
        """The dashboard opened on the panel titled `panel`."""
        # Imported here: the dashboard module reads the alert thresholds, which import this one.
        from eddie_otel.ops.dashboard import UID, build_dashboard

        return f"{self.grafana_base_url.rstrip('/')}/d/{UID}?viewPanel={panel_id(build_dashboard(), panel)}"
