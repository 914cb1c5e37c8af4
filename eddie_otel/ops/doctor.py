"""`eddie-otel doctor`: the troubleshooting steps, in order, stopping at the first that fails.

A user and password in a URL authenticate its requests (HTTP Basic; for Grafana only
when no API key is given) and are never shown: messages carry the URL without its
user info, and every line printed goes through a redactor of the secrets given.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from eddie_otel.endpoint import METRICS_PATH
from eddie_otel.environment import GRAFANA_API_KEY
from eddie_otel.errors import EddieOtelError
from eddie_otel.ops.credentials import Located, redactor
from eddie_otel.ops.dashboard import UID as DASHBOARD_UID

__all__ = ["Check", "CheckFailed", "doctor_command", "run_checks"]

PROBE_METRIC = "task_split_total"
TIMEOUT_SECONDS = 5.0


class CheckFailed(EddieOtelError):
    """A check failed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Check:
    """One troubleshooting step: a title and the function that raises CheckFailed or returns a detail."""

    title: str
    run: Callable[[], str]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the Authorization header to wherever it points; report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str, authorization: str | None = None) -> tuple[int, bytes]:
    """GET `url` (no user info in it), with an `Authorization` value when given."""
    headers = {"Authorization": authorization} if authorization else {}
    opener = urllib.request.build_opener(_NoRedirect) if authorization else urllib.request.build_opener()
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise CheckFailed(f"cannot reach {url}: {reason}") from None


def _prometheus_api(prometheus: Located, path: str, **params: str) -> Any:
    base = prometheus.url.rstrip("/")
    url = f"{base}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    status, body = _get(url, prometheus.authorization)
    if status != 200:
        raise CheckFailed(f"{url} answered HTTP {status}; is {base} a Prometheus server?")
    try:
        answer = json.loads(body)
    except ValueError:
        raise CheckFailed(f"{url} did not answer JSON; is {base} a Prometheus server?") from None
    return answer.get("data")


def check_metrics_endpoint(metrics_url: str) -> str:
    """Step 1: the endpoint answers and exposes task_split_total."""
    metrics = Located.parse(metrics_url)
    url = metrics.url.rstrip("/") + METRICS_PATH
    try:
        status, body = _get(url, metrics.authorization)
    except CheckFailed as failure:
        raise CheckFailed(f"{failure}. Start the service (`eddie-otel serve`) or the instrumented agent.") from None
    if status != 200:
        raise CheckFailed(f"{url} answered HTTP {status}; the metrics are served at {METRICS_PATH}.")
    text = body.decode("utf-8", "replace")
    if f"# TYPE {PROBE_METRIC} counter" not in text and f"\n{PROBE_METRIC}{{" not in text:
        raise CheckFailed(
            f"{url} answers but has no {PROBE_METRIC} yet: nothing has recorded a split. "
            "Check that the agents call eddie_otel.record_split (or run `eddie-otel demo`)."
        )
    return f"{url} answers with {PROBE_METRIC}"


def check_prometheus_target(prometheus_url: str, metrics_url: str) -> str:
    """Step 2: Prometheus scrapes the endpoint and the target is up."""
    prometheus = Located.parse(prometheus_url)
    base = prometheus.url.rstrip("/")
    data = _prometheus_api(prometheus, "targets", state="active")
    wanted = urllib.parse.urlsplit(Located.parse(metrics_url).url)
    targets = [
        t
        for t in (data or {}).get("activeTargets", [])
        if urllib.parse.urlsplit(t.get("scrapeUrl", "")).path == METRICS_PATH
    ]
    if not targets:
        raise CheckFailed(
            f"Prometheus at {base} has no target scraping {METRICS_PATH}. Add a scrape job with "
            f"metrics_path: {METRICS_PATH} and targets: ['{wanted.netloc or 'localhost:8503'}'] "
            "(see dashboards/prometheus.yml) and reload Prometheus."
        )
    down = [t for t in targets if t.get("health") != "up"]
    if len(down) == len(targets):
        errors = "; ".join(f"{t.get('scrapeUrl')}: {t.get('lastError') or t.get('health')}" for t in down)
        raise CheckFailed(f"Prometheus cannot scrape the eddie target ({errors}). Check the address and the firewall.")
    return ", ".join(f"{t.get('scrapeUrl')} is {t.get('health')}" for t in targets)


def check_prometheus_series(prometheus_url: str) -> str:
    """Step 3: Prometheus returns the task_split_total series."""
    prometheus = Located.parse(prometheus_url)
    base = prometheus.url.rstrip("/")
    data = _prometheus_api(prometheus, "query", query=PROBE_METRIC)
    result = (data or {}).get("result", [])
    if not result:
        raise CheckFailed(
            f"Prometheus at {base} has no {PROBE_METRIC} series yet. Wait one scrape interval; if it "
            "stays empty, check the job's metrics_path and that the target is the one you checked above."
        )
    return f"{len(result)} {PROBE_METRIC} series"


def check_grafana_dashboard(grafana_url: str, api_key: str | None) -> str:
    """Step 4: Grafana has the dashboard."""
    grafana = Located.parse(grafana_url)
    base = grafana.url.rstrip("/")
    authorization = f"Bearer {api_key}" if api_key else grafana.authorization
    status, body = _get(f"{base}/api/dashboards/uid/{DASHBOARD_UID}", authorization)
    if status in (401, 403):
        given = "the user and password in --grafana-url were" if not api_key and grafana.authorization else None
        raise CheckFailed(
            f"Grafana at {base} refused the request (HTTP {status}): "
            + (f"{given} refused; " if given else "")
            + f"set {GRAFANA_API_KEY} or --api-key to a token that may read dashboards."
        )
    if status == 404:
        raise CheckFailed(
            f"Grafana at {base} has no dashboard {DASHBOARD_UID}. Run `eddie-otel grafana-setup --grafana-url {base}`."
        )
    if status != 200:
        raise CheckFailed(f"Grafana at {base} answered HTTP {status} for the dashboard.")
    try:
        title = json.loads(body).get("dashboard", {}).get("title", DASHBOARD_UID)
    except (ValueError, AttributeError):
        raise CheckFailed(
            f"{base} did not answer like Grafana's HTTP API; is --grafana-url Grafana's base URL?"
        ) from None
    return f"dashboard {title!r} is there: {base}/d/{DASHBOARD_UID}"


def checks(metrics_url: str, prometheus_url: str, grafana_url: str | None, api_key: str | None) -> list[Check]:
    """The checks to run, in order."""
    steps = [
        Check("metrics endpoint answers with task_split_total", lambda: check_metrics_endpoint(metrics_url)),
        Check("Prometheus scrapes the endpoint", lambda: check_prometheus_target(prometheus_url, metrics_url)),
        Check("Prometheus returns the series", lambda: check_prometheus_series(prometheus_url)),
    ]
    if grafana_url:
        steps.append(Check("Grafana has the dashboard", lambda: check_grafana_dashboard(grafana_url, api_key)))
    return steps


def run_checks(steps: list[Check], out: TextIO, redact: Callable[[str], str] = lambda text: text) -> int:
    """Run `steps` in order, printing one line each (through `redact`); stop at the first failure.

    Returns the exit status.
    """
    for number, step in enumerate(steps, 1):
        try:
            detail = step.run()
        except CheckFailed as failure:
            print(redact(f"[{number}/{len(steps)}] FAIL {step.title}\n      {failure}"), file=out)
            return 1
        print(redact(f"[{number}/{len(steps)}] ok   {step.title}: {detail}"), file=out)
    print("all checks passed", file=out)
    return 0


def doctor_command(*, metrics_url: str, prometheus_url: str, grafana_url: str | None, api_key: str | None) -> int:
    """Handler of `eddie-otel doctor`; returns the exit status."""
    api_key = (api_key or os.environ.get(GRAFANA_API_KEY) or "").strip() or None
    urls = (metrics_url, prometheus_url, grafana_url or "")
    redact = redactor([api_key, *(secret for url in urls for secret in Located.parse(url).secrets())])
    return run_checks(checks(metrics_url, prometheus_url, grafana_url, api_key), sys.stdout, redact)
