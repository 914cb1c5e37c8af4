"""`eddie-otel grafana-setup`: check the arguments, run the setup, print what happened.

The API key goes into the `Authorization: Bearer` header and nowhere else; a user and
password in --grafana-url go into a Basic `Authorization` header (when no key is given)
and nowhere else. Output, errors and --dry-run show URLs without their user info and
every secret, plain or base64-encoded, as `<redacted>`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from eddie_otel.environment import GRAFANA_API_KEY
from eddie_otel.ops import assets
from eddie_otel.ops.credentials import Located
from eddie_otel.ops.grafana.client import DryRunTransport, Endpoints
from eddie_otel.ops.grafana.errors import GrafanaSetupError
from eddie_otel.ops.grafana.payloads import alert_rule_payloads, load_dashboard
from eddie_otel.ops.grafana.setup import Setup
from eddie_otel.ops.grafana.urls import REDACTED, http_url, redactor, shown

__all__ = ["setup_command"]


def _dashboard_path(raw: str | None) -> Path:
    if raw is not None:
        return Path(raw)
    return assets.asset_path(assets.DASHBOARD)


def setup_command(
    *, grafana_url: str, prometheus_url: str, api_key: str | None, dashboard: str | None, dry_run: bool
) -> int:
    """Handler of `eddie-otel grafana-setup`; returns the exit status."""
    token = api_key if api_key is not None else os.environ.get(GRAFANA_API_KEY)
    token = token.strip() if token else None
    grafana = Located.parse(grafana_url.strip())
    # A password in --prometheus-url ends up in the datasource URL Grafana stores, but not on screen.
    redact = redactor([token, *grafana.secrets(), *Located.parse(prometheus_url.strip()).secrets()])

    def say(line: str) -> None:
        print(redact(line), flush=True)

    try:
        grafana_url = http_url("--grafana-url", grafana_url)
        prometheus_url = http_url("--prometheus-url", prometheus_url)
        model = load_dashboard(_dashboard_path(dashboard))
        rules = alert_rule_payloads()
        if dry_run:
            # A path prefix is kept: Grafana may be served under /grafana/.
            api_path = urlsplit(grafana.url).path.rstrip("/") + "/api"
            say(f"dry run: nothing is sent to {shown(grafana_url)}; every request would carry")
            if token:
                say(f"Authorization: Bearer {REDACTED}")
            elif grafana.authorization:
                say(f"Authorization: Basic {REDACTED} (the user and password in --grafana-url)")
            else:
                say(f"no Authorization header (no --api-key or {GRAFANA_API_KEY} given)")
            endpoints = Endpoints.over(DryRunTransport(api_path, say))
        else:
            endpoints = Endpoints.connect(grafana_url, token, redact)
        path = Setup(
            endpoints,
            grafana_url,
            prometheus_url,
            model,
            rules,
            say,
            dry_run=dry_run,
            credential="token" if token else "password" if grafana.authorization else None,
        ).run()
    except GrafanaSetupError as exc:
        print(f"eddie-otel grafana-setup: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    if dry_run:
        say("dry run: nothing was sent")
    else:
        say(f"done: {shown(grafana_url)}{path}" if path else "done")
    return 0
