"""`eddie-otel grafana-setup`: the Prometheus datasource, folder, dashboard and alert rules in Grafana.

`payloads` builds what is sent, `client` speaks Grafana's HTTP API (stdlib only), `setup` runs the
steps in order and `command` is the command-line handler.
"""

from __future__ import annotations

from eddie_otel.ops.grafana.command import setup_command
from eddie_otel.ops.grafana.errors import GrafanaSetupError
from eddie_otel.ops.grafana.payloads import (
    DATASOURCE_NAME,
    DATASOURCE_UID,
    FOLDER_TITLE,
    FOLDER_UID,
    RULE_GROUP,
    alert_rule_payload,
    dashboard_payload,
    datasource_payload,
    grafana_template,
    load_dashboard,
    rule_uid,
)

__all__ = [
    "DATASOURCE_NAME",
    "DATASOURCE_UID",
    "FOLDER_TITLE",
    "FOLDER_UID",
    "RULE_GROUP",
    "GrafanaSetupError",
    "alert_rule_payload",
    "dashboard_payload",
    "datasource_payload",
    "grafana_template",
    "load_dashboard",
    "rule_uid",
    "setup_command",
]
