"""Where an alert's annotations point: its runbook section and its dashboard panel, under configurable base URLs.

Reads the dashboard's panel ids (built once by `dashboard`); `alerts` imports this module, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

from eddie_otel.ops.dashboard import UID, dashboard_panel_ids

__all__ = ["DEFAULT_GRAFANA_BASE_URL", "DEFAULT_RUNBOOK_BASE_URL", "Links"]

# The runbooks' path in the eddie-otel source tree, relative to its root: true wherever the source is,
# but a link no browser can follow. eddie-otel publishes them nowhere, so in production pass
# --runbook-base-url with the address where your copy of docs/runbooks.md is served.
DEFAULT_RUNBOOK_BASE_URL = "docs/runbooks.md"
# Grafana of `eddie-otel stack`.
DEFAULT_GRAFANA_BASE_URL = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class Links:
    """Base URLs of the runbooks (a Markdown file, sections by alert name) and of Grafana."""

    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    grafana_base_url: str = DEFAULT_GRAFANA_BASE_URL

    def runbook(self, alert: str) -> str:
        """The runbook section of `alert`: a `## AlertName` heading, whose anchor is the lowercased name."""
        return f"{self.runbook_base_url}#{alert.lower()}"

    def dashboard(self, panel: str) -> str:
        """The dashboard opened on the panel titled `panel` (a time series rather than a stat of the same title)."""
        ids = dashboard_panel_ids()
        if panel not in ids:
            raise ValueError(f"the dashboard has no panel titled {panel!r}")
        return f"{self.grafana_base_url.rstrip('/')}/d/{UID}?viewPanel={ids[panel]}"
