"""`eddie-otel doctor`: the troubleshooting steps, in order, stopping at the first that fails.

A user and password in a URL authenticate its requests (HTTP Basic; for Grafana only
when no API key is given) and are never shown: messages carry the URL without its
user info, and every line printed goes through a redactor of the secrets given.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from eddie_otel.discovery import is_stale
from eddie_otel.endpoint import METRICS_PATH
from eddie_otel.environment import GRAFANA_API_KEY
from eddie_otel.errors import ConfigurationError, EddieOtelError
from eddie_otel.ops.credentials import Located, url_redactor
from eddie_otel.ops.dashboard import UID as DASHBOARD_UID
from eddie_otel.ops.prometheus_api import (
    TIMEOUT_SECONDS,
    PrometheusAPI,
    PrometheusError,
    Unreachable,
    http_get,
    parse_url,
)

__all__ = ["Check", "CheckFailed", "Found", "doctor_command", "endpoint_base", "run_checks", "stale_discovery_files"]

PROBE_METRIC = "task_split_total"


class CheckFailed(EddieOtelError):
    """A check failed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Check:
    """One troubleshooting step: a title and the function that raises CheckFailed or returns a detail."""

    title: str
    run: Callable[[], str]


def _get(url: str, authorization: str | None = None) -> tuple[int, bytes]:
    """GET `url` (no user info in it), with an `Authorization` value when given."""
    try:
        return http_get(url, authorization, TIMEOUT_SECONDS)
    except Unreachable as exc:
        raise CheckFailed(str(exc)) from None


def _prometheus_api(prometheus: Located, path: str, **params: str) -> Any:
    try:
        return PrometheusAPI(prometheus).get(path, **params)
    except (PrometheusError, Unreachable) as exc:
        raise CheckFailed(str(exc)) from None


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_base(metrics_url: str) -> str:
    """The base URL of a metrics endpoint given as its base or as the exposition's URL (…/metrics/prometheus)."""
    url = metrics_url.rstrip("/")
    return url.removesuffix(METRICS_PATH) if url.endswith(METRICS_PATH) else url


def _address(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the loopback names as one and the scheme's default port filled in."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", url, None)
    host = (parts.hostname or "").lower()
    return (parts.scheme, "127.0.0.1" if host in _LOOPBACK else host, port or _DEFAULT_PORTS.get(parts.scheme))


def check_metrics_endpoint(metrics_url: str) -> str:
    """Step 1: the endpoint answers and exposes task_split_total."""
    metrics = Located.parse(metrics_url)
    url = endpoint_base(metrics.url) + METRICS_PATH
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


def _health(target: dict[str, Any]) -> str:
    health = str(target.get("health", "unknown"))
    error = target.get("lastError")
    return f"{target.get('scrapeUrl')} is {health}" + (f" ({error})" if error and health != "up" else "")


class Found:
    """What a step found that the next ones look at: the Prometheus target of the endpoint."""

    def __init__(self) -> None:
        self.target: dict[str, Any] | None = None

    @property
    def job(self) -> str:
        """The scrape job of the endpoint's target."""
        assert self.target is not None, "the target step runs first"
        return str(self.target.get("labels", {}).get("job") or self.target.get("scrapePool", ""))

    @property
    def instance(self) -> str:
        """The `instance` label of the endpoint's target."""
        assert self.target is not None, "the target step runs first"
        return str(self.target.get("labels", {}).get("instance", ""))


def check_prometheus_target(prometheus_url: str, metrics_url: str, found: Found | None = None) -> str:
    """Step 2: Prometheus scrapes this endpoint (same scheme, host and port) and the target is up."""
    prometheus = Located.parse(prometheus_url)
    base = prometheus.url.rstrip("/")
    data = _prometheus_api(prometheus, "targets", state="active")
    wanted_url = endpoint_base(Located.parse(metrics_url).url) + METRICS_PATH
    wanted = _address(wanted_url)
    targets = [
        t
        for t in (data or {}).get("activeTargets", [])
        if urllib.parse.urlsplit(t.get("scrapeUrl", "")).path == METRICS_PATH
    ]
    if not targets:
        netloc = urllib.parse.urlsplit(wanted_url).netloc
        raise CheckFailed(
            f"Prometheus at {base} has no target scraping {METRICS_PATH}. Add a scrape job with "
            f"metrics_path: {METRICS_PATH} and targets: ['{netloc or 'localhost:8503'}'] "
            "(see dashboards/prometheus.yml) and reload Prometheus."
        )
    matching = [t for t in targets if _address(t.get("scrapeUrl", "")) == wanted]
    if not matching:
        scraped = "; ".join(_health(t) for t in targets)
        raise CheckFailed(
            f"Prometheus at {base} does not scrape {wanted_url}: it scrapes {scraped}. Either the endpoint "
            "runs on another scheme, host or port than Prometheus expects, or --metrics-url names another "
            "process; fix the scrape job's targets (or --metrics-url) so that they agree."
        )
    up = [t for t in matching if t.get("health") == "up"]
    if not up:
        errors = "; ".join(_health(t) for t in matching)
        raise CheckFailed(f"Prometheus cannot scrape the eddie target ({errors}). Check the address and the firewall.")
    if found is not None:
        found.target = up[0]
    return ", ".join(f"{_health(t)} (job {t.get('labels', {}).get('job', '?')})" for t in matching)


def _discovery_files(directory: Path) -> list[tuple[Path, list[str]]]:
    if not directory.is_dir():
        raise CheckFailed(f"discovery directory {directory} does not exist")
    files = []
    for path in sorted(directory.glob("*.json")):
        try:
            groups = json.loads(path.read_text(encoding="utf-8"))
            addresses = [str(address) for group in groups for address in group.get("targets", [])]
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise CheckFailed(f"discovery file {path} is not file_sd JSON ({exc}); remove it") from None
        files.append((path, addresses))
    return files


def _answers(address: str) -> bool:
    try:
        status, _ = http_get(f"http://{address}{METRICS_PATH}", None, TIMEOUT_SECONDS)
    except Unreachable:
        return False
    return status == 200


def stale_discovery_files(directory: Path) -> list[tuple[Path, str, str]]:
    """The discovery files in `directory` that name a process that is gone: (file, target, why)."""
    stale = []
    for path, addresses in _discovery_files(directory):
        for address in addresses:
            if is_stale(path):
                stale.append((path, address, "its process is gone"))
            elif not _answers(address):
                stale.append((path, address, "it does not answer"))
    return stale


def check_fleet(prometheus_url: str, found: Found, discovery_dir: str | None = None) -> str:
    """Step 3: every target of the endpoint's job is up, each with its own service_instance_id; no stale file."""
    prometheus = Located.parse(prometheus_url)
    data = _prometheus_api(prometheus, "targets", state="active")
    job = found.job
    targets = [t for t in (data or {}).get("activeTargets", []) if t.get("labels", {}).get("job") == job]
    problems = [f"down: {_health(t)}" for t in targets if t.get("health") != "up"]
    result = _prometheus_api(prometheus, "query", query=f"target_info{{job={json.dumps(job)}}}") or {}
    by_id: dict[str, list[str]] = defaultdict(list)
    for series in result.get("result", []):
        labels = series.get("metric", {})
        if labels.get("service_instance_id"):
            by_id[labels["service_instance_id"]].append(labels.get("instance", "?"))
    problems += [
        f"service_instance_id {instance_id} on {len(instances)} targets ({', '.join(sorted(instances))}): "
        "one process scraped twice (two addresses for one process), or two processes sharing an id"
        for instance_id, instances in sorted(by_id.items())
        if len(instances) > 1
    ]
    if discovery_dir:
        problems += [
            f"stale discovery file {path} names {address}, but {why}: remove it"
            for path, address, why in stale_discovery_files(Path(discovery_dir))
        ]
    listing = ", ".join(_health(t) for t in targets)
    if problems:
        raise CheckFailed(f"job {job!r} has {len(targets)} targets ({listing}); " + "; ".join(problems))
    ids = f", {len(by_id)} service_instance_id{'s' if len(by_id) != 1 else ''}" if by_id else ""
    return f"job {job!r}: {len(targets)} target{'s' if len(targets) != 1 else ''} up{ids} ({listing})"


def check_prometheus_series(prometheus_url: str, found: Found | None = None) -> str:
    """Step 4: Prometheus returns the task_split_total series of the endpoint's own target."""
    prometheus = Located.parse(prometheus_url)
    base = prometheus.url.rstrip("/")
    query = PROBE_METRIC
    if found is not None and found.target is not None:
        query = f"{PROBE_METRIC}{{job={json.dumps(found.job)}, instance={json.dumps(found.instance)}}}"
    data = _prometheus_api(prometheus, "query", query=query)
    result = (data or {}).get("result", [])
    if not result:
        raise CheckFailed(
            f"Prometheus at {base} has no {query} series yet. Wait one scrape interval; if it "
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


def checks(
    metrics_url: str,
    prometheus_url: str,
    grafana_url: str | None,
    api_key: str | None,
    discovery_dir: str | None = None,
) -> list[Check]:
    """The checks to run, in order."""
    found = Found()
    steps = [
        Check("metrics endpoint answers with task_split_total", lambda: check_metrics_endpoint(metrics_url)),
        Check("Prometheus scrapes the endpoint", lambda: check_prometheus_target(prometheus_url, metrics_url, found)),
        Check("every target of the job is up, once", lambda: check_fleet(prometheus_url, found, discovery_dir)),
        Check("Prometheus returns the series", lambda: check_prometheus_series(prometheus_url, found)),
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


def doctor_command(
    *,
    metrics_url: str,
    prometheus_url: str,
    grafana_url: str | None,
    api_key: str | None,
    discovery_dir: str | None = None,
) -> int:
    """Handler of `eddie-otel doctor`; returns the exit status (2 for a URL that is not one)."""
    api_key = (api_key or os.environ.get(GRAFANA_API_KEY) or "").strip() or None
    redact = url_redactor((metrics_url, prometheus_url, grafana_url), [api_key])
    given = (("--metrics-url", metrics_url), ("--prometheus-url", prometheus_url), ("--grafana-url", grafana_url))
    try:
        for option, url in given:
            if url is not None:
                parse_url(url, option)
    except ConfigurationError as exc:
        print(redact(f"eddie-otel doctor: error: {exc}"), file=sys.stderr)
        return 2
    steps = checks(metrics_url, prometheus_url, grafana_url, api_key, discovery_dir)
    return run_checks(steps, sys.stdout, redact)
