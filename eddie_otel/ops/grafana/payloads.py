"""What grafana-setup sends: the datasource, folder, dashboard and alert-rule bodies, each with a fixed uid.

The alert rules are the Prometheus rules of `eddie_otel.ops.alerts` turned into
Grafana-managed rules the way Grafana's own Prometheus-rule conversion does it:
the PromQL expression as an instant query, then a math and a threshold expression
that fire for every series the query returns, exactly like Prometheus.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from eddie_otel._version import __version__
from eddie_otel.ops import alerts, slo
from eddie_otel.ops.grafana.errors import GrafanaSetupError
from eddie_otel.ops.links import Links

__all__ = [
    "DATASOURCE_NAME",
    "DATASOURCE_UID",
    "FOLDER_TITLE",
    "FOLDER_UID",
    "RULE_GROUP",
    "alert_rule_payload",
    "alert_rule_payloads",
    "dashboard_payload",
    "datasource_payload",
    "grafana_template",
    "load_dashboard",
    "rule_uid",
]

DATASOURCE_UID = "eddie-prometheus"
DATASOURCE_NAME = "Eddie Prometheus"
FOLDER_UID = "eddie"
FOLDER_TITLE = "Eddie"
RULE_GROUP = alerts.GROUP

# Grafana's limit on every uid (datasource, folder, dashboard, alert rule).
_UID_MAX = 40
_UID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
_EXPRESSIONS = "__expr__"
# How far back the alert query may look; the rules' own windows ([5m]) fit inside.
_QUERY_RANGE_SECONDS = 600
_PROMETHEUS_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def rule_uid(alert: str) -> str:
    """The fixed Grafana uid of the alert rule named `alert` (EddieHighTimeoutEvents → eddie-high-timeout-events)."""
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", alert).lower()
    kebab = re.sub(r"[^a-z0-9_-]+", "-", kebab).strip("-")
    if not kebab.startswith("eddie-"):
        kebab = f"eddie-{kebab}"
    if len(kebab) <= _UID_MAX:
        return kebab
    # Too long for Grafana: keep a readable prefix and a digest so that two long names stay distinct.
    digest = hashlib.sha256(alert.encode()).hexdigest()[:8]
    return f"{kebab[: _UID_MAX - 9].rstrip('-')}-{digest}"


def grafana_template(text: str) -> str:
    """A Prometheus annotation template rewritten for Grafana: `$value` becomes the query's value."""
    # Grafana has no $value of the firing sample; $values.A.Value is the instant query's result.
    return re.sub(r"\$value(?![A-Za-z0-9_])", "$values.A.Value", text)


def datasource_payload(prometheus_url: str, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body that creates (or, given the stored one, updates) the Prometheus datasource."""
    payload: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": False,
        # POST lets long PromQL through; 10s is the eddie job's scrape interval, which $__rate_interval builds on.
        "jsonData": {"httpMethod": "POST", "timeInterval": "10s"},
    }
    if existing is not None:
        # Keep the operator's choice of default datasource; send the version so a concurrent edit is not lost.
        payload["isDefault"] = bool(existing.get("isDefault", False))
        if isinstance(existing.get("version"), int):
            payload["version"] = existing["version"]
    return payload


def load_dashboard(path: Path) -> dict[str, Any]:
    """The dashboard in the JSON file `path`; a clear error names the file, and the line when it is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GrafanaSetupError(f"dashboard file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise GrafanaSetupError(f"cannot read dashboard file {path}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrafanaSetupError(
            f"dashboard file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    # A dashboard exported with "Export for sharing" or fetched from the API wraps the model in "dashboard".
    if isinstance(document, dict) and isinstance(document.get("dashboard"), dict) and "panels" not in document:
        document = document["dashboard"]
    if not isinstance(document, dict):
        raise GrafanaSetupError(f"dashboard file {path} must hold a JSON object (a Grafana dashboard)")
    title = document.get("title")
    if not isinstance(title, str) or not title.strip():
        raise GrafanaSetupError(f'dashboard file {path} has no "title"')
    uid = document.get("uid")
    if not isinstance(uid, str) or not _UID_PATTERN.match(uid) or len(uid) > _UID_MAX:
        raise GrafanaSetupError(
            f'dashboard file {path} needs a "uid" of at most {_UID_MAX} letters, digits, "-" or "_" '
            "(a fixed uid is what lets a rerun update the dashboard instead of adding a copy)"
        )
    return document


def dashboard_payload(dashboard: Mapping[str, Any], folder_uid: str = FOLDER_UID) -> dict[str, Any]:
    """The body of POST /api/dashboards/db: the dashboard in the folder, its datasource variable set to ours."""
    model = copy.deepcopy(dict(dashboard))
    # A null id makes Grafana find the dashboard by uid; a file's id belongs to another Grafana.
    model["id"] = None
    templating = model.get("templating")
    variables = templating.get("list") if isinstance(templating, dict) else None
    for variable in variables if isinstance(variables, list) else []:
        if (
            isinstance(variable, dict)
            and variable.get("type") == "datasource"
            and variable.get("query") == "prometheus"
        ):
            variable["current"] = {"selected": True, "text": DATASOURCE_NAME, "value": DATASOURCE_UID}
    return {
        "dashboard": model,
        "folderUid": folder_uid,
        "overwrite": True,
        "message": f"eddie-otel grafana-setup {__version__}",
    }


def _duration(value: object, alert: str) -> str:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _PROMETHEUS_DURATION.match(value):
        return value
    else:
        raise GrafanaSetupError(f"alert rule {alert}: 'for' must be a duration like 5m, not {value!r}")
    if seconds < 0 or seconds != int(seconds):
        raise GrafanaSetupError(f"alert rule {alert}: 'for' must be a whole number of seconds ≥ 0, not {value!r}")
    return f"{int(seconds)}s"


def _expression(ref_id: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "queryType": "",
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": _EXPRESSIONS,
        "model": {"refId": ref_id, "datasource": {"type": _EXPRESSIONS, "uid": _EXPRESSIONS}, **model},
    }


def alert_rule_payload(rule: alerts.Rule, folder_uid: str = FOLDER_UID, uid: str | None = None) -> dict[str, Any]:
    """The Grafana-managed alert rule (provisioning API body) equivalent to the Prometheus rule `rule`."""
    alert = rule.alert
    links = Links()
    query = {
        "refId": "A",
        "queryType": "",
        "relativeTimeRange": {"from": _QUERY_RANGE_SECONDS, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {
            "refId": "A",
            "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
            # Grafana reads Prometheus directly: recorded SLO ratios are written out in full.
            "expr": slo.inline(rule.expr),
            "instant": True,
            "range": False,
        },
    }
    # A Prometheus alert fires for every series its expression returns, whatever the value (even 0 or NaN);
    # B turns "a series is there" into 1, and C fires on it. No series means no alert: noDataState OK.
    present = _expression("B", {"type": "math", "expression": "is_number($A) || is_nan($A) || is_inf($A)"})
    fires = _expression(
        "C", {"type": "threshold", "expression": "B", "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}
    )
    return {
        "uid": uid or rule_uid(alert),
        # Grafana wants unique titles in a folder: the two severities of a burn-rate alert say which they are.
        "title": f"{alert} ({rule.severity})" if uid else alert,
        "ruleGroup": RULE_GROUP,
        "folderUID": folder_uid,
        # Grafana replaces orgID with the token's organisation; the schema wants it present.
        "orgID": 1,
        "condition": "C",
        "data": [query, present, fires],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": _duration(rule.for_, alert),
        "labels": {"severity": rule.severity},
        "annotations": {
            "summary": grafana_template(rule.summary),
            "description": grafana_template(rule.description),
            "runbook_url": links.runbook(alert),
            "dashboard_url": links.dashboard(rule.panel),
        },
        "isPaused": False,
    }


def alert_rule_payloads() -> list[dict[str, Any]]:
    """The Grafana-managed alert rules of every shipped Prometheus rule, in rule-file order."""
    rules = alerts.all_rules()
    names = [rule.alert for rule in rules]
    # A burn-rate alert has a critical and a warning rule of the same name: Grafana needs a uid each.
    return [
        alert_rule_payload(rule, uid=rule_uid(f"{rule.alert}-{rule.severity}") if names.count(rule.alert) > 1 else None)
        for rule in rules
    ]
