"""`eddie-otel doctor`: the troubleshooting steps, in order, stopping at the first that fails.

A user and password in a URL authenticate its requests (HTTP Basic; for Grafana only
when no API key is given) and are never shown: messages carry the URL without its
user info, and every line printed goes through a redactor of the secrets given.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from eddie_otel.config import DEFAULT_HOST, DEFAULT_PORT
from eddie_otel.discovery import PID_LABEL, is_stale, read_target
from eddie_otel.endpoint import HEALTH_PATH, METRICS_PATH
from eddie_otel.environment import EDDIE_OTEL_DISCOVERY_DIR, GRAFANA_API_KEY
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

__all__ = [
    "DEFAULT_METRICS_URL",
    "Check",
    "CheckFailed",
    "Found",
    "doctor_command",
    "endpoint_base",
    "run_checks",
    "stale_discovery_files",
]

PROBE_METRIC = "task_split_total"
DEFAULT_METRICS_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
# What a person reads after "note:" when an endpoint answers but nothing has recorded a split yet.
NO_SPLIT_YET = f"nothing has recorded a split yet, so there is no {PROBE_METRIC} (normal before the first task)"
# The endpoint's other routes (/metrics/summary, /metrics/health, /events/..., /docs): a --metrics-url
# with one of them in its path is not the endpoint's base URL.
_ROUTE = re.compile(r"/(metrics|events|docs)(/|$)")
# A query string in a message would show the PromQL of the request; a person needs the URL only.
_QUERY = re.compile(r"\?[^\s:]*")


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
        raise CheckFailed(_QUERY.sub("", str(exc))) from None


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_base(metrics_url: str) -> str:
    """The base URL of a metrics endpoint given as its base or as the exposition's URL (…/metrics/prometheus)."""
    url = metrics_url.rstrip("/")
    return url.removesuffix(METRICS_PATH) if url.endswith(METRICS_PATH) else url


def check_metrics_url(metrics_url: str, option: str = "--metrics-url") -> None:
    """ConfigurationError when `metrics_url` names another route of the endpoint than its base or METRICS_PATH."""
    url = Located.parse(metrics_url).url
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    route = None if path.endswith(METRICS_PATH) else _ROUTE.search(path)
    if route is not None:
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path[: route.start()], "", ""))
        raise ConfigurationError(
            f"{option} must be the endpoint's base URL (like {DEFAULT_METRICS_URL}) or its {METRICS_PATH} URL, "
            f"not {url}; try {base}"
        )


def _address(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the loopback names as one and the scheme's default port filled in."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", url, None)
    host = (parts.hostname or "").lower()
    return (parts.scheme, "127.0.0.1" if host in _LOOPBACK else host, port or _DEFAULT_PORTS.get(parts.scheme))


def _exposition(url: str, authorization: str | None = None) -> str:
    """The text exposition at `url`; CheckFailed unless it answers 200 with one."""
    status, body = _get(url, authorization)
    if status != 200:
        raise CheckFailed(
            f"{url} answered HTTP {status}; the metrics are served at {METRICS_PATH} of the endpoint's base URL."
        )
    text = body.decode("utf-8", "replace")
    if "# TYPE " not in text:
        raise CheckFailed(f"{url} answers, but not with Prometheus metrics; is this an eddie-otel endpoint?")
    return text


def _has_probe(text: str) -> bool:
    return f"# TYPE {PROBE_METRIC} counter" in text or f"\n{PROBE_METRIC}{{" in text


def check_metrics_endpoint(metrics_url: str, found: Found | None = None) -> str:
    """Step 1: the endpoint answers with metrics; task_split_total, or a note that nothing recorded a split yet."""
    metrics = Located.parse(metrics_url)
    url = endpoint_base(metrics.url) + METRICS_PATH
    try:
        text = _exposition(url, metrics.authorization)
    except CheckFailed as failure:
        if str(failure).startswith("cannot reach "):
            raise CheckFailed(f"{failure}. Start the service (`eddie-otel serve`) or the instrumented agent.") from None
        raise
    recorded = _has_probe(text)
    if found is not None:
        found.recorded = recorded
    if not recorded:
        return f"{url} answers; note: {NO_SPLIT_YET}"
    return f"{url} answers with {PROBE_METRIC}"


def _health(target: dict[str, Any]) -> str:
    health = str(target.get("health", "unknown"))
    error = target.get("lastError")
    return f"{target.get('scrapeUrl')} is {health}" + (f" ({error})" if error and health != "up" else "")


class Found:
    """What a step found that the next ones look at: the Prometheus target of the endpoint."""

    def __init__(self) -> None:
        self.target: dict[str, Any] | None = None
        # Whether the endpoint (or any announced process) exposes task_split_total.
        self.recorded = True
        # The announced processes' addresses (discovery mode): the series are checked for the whole job.
        self.announced: list[str] = []

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


def _pid(path: Path) -> str:
    group = read_target(path) or {}
    return str(group.get("labels", {}).get(PID_LABEL, "?"))


def _probe(path: Path, address: str) -> tuple[bool, bool, str]:
    """One announced process: (answers well, exposes task_split_total, what a person reads about it)."""
    if is_stale(path):
        return False, False, f"stale: its process (pid {_pid(path)}) is gone; remove {path.name}"
    base = f"http://{address}"
    try:
        text = _exposition(base + METRICS_PATH)
        status, body = _get(base + HEALTH_PATH)
    except CheckFailed as failure:
        if str(failure).startswith("cannot reach "):
            reason = str(failure).rpartition(": ")[2]
            return False, False, f"does not answer ({reason}): if its process is gone, the file is stale; remove it"
        return False, False, str(failure)
    try:
        health = json.loads(body)
    except ValueError:
        health = None
    if status != 200 or not isinstance(health, dict) or health.get("status") != "ok":
        return False, False, f"{base}{HEALTH_PATH} answered HTTP {status}, not an ok health check"
    recorded = _has_probe(text)
    detail = f"service {health.get('service', '?')}, pid {_pid(path)}: {METRICS_PATH} and {HEALTH_PATH} answer"
    return True, recorded, detail + ("" if recorded else f"; note: {NO_SPLIT_YET}")


def check_announced(discovery_dir: str, found: Found) -> str:
    """Step 1 without --metrics-url: every process announced in the discovery directory answers, one line each."""
    directory = Path(discovery_dir)
    if not directory.is_dir():
        raise CheckFailed(f"discovery directory {directory} does not exist")
    lines: list[str] = []
    failing = 0
    for path in sorted(directory.glob("*.json")):
        group = read_target(path)
        addresses = group.get("targets") if group is not None else None
        if not isinstance(addresses, list) or not addresses:
            lines.append(f"FAIL {path.name}: not a discovery file of one target (file_sd JSON); remove it")
            failing += 1
            continue
        for address in map(str, addresses):
            ok, recorded, detail = _probe(path, address)
            lines.append(f"{'ok  ' if ok else 'FAIL'} {address} ({path.name}): {detail}")
            if ok:
                found.announced.append(address)
                found.recorded = found.recorded or recorded
            else:
                failing += 1
    if not lines:
        raise CheckFailed(
            f"no process has announced itself in {directory}: start the agents (or `eddie-otel serve`) with "
            f"{EDDIE_OTEL_DISCOVERY_DIR}={directory}"
        )
    listed = "\n".join(lines)
    count = f"{len(lines)} process{'es' if len(lines) != 1 else ''} announced in {directory}"
    if failing:
        raise CheckFailed(f"{failing} of the {count} failed\n{listed}")
    return f"{count}\n{listed}"


def check_prometheus_announced(prometheus_url: str, discovery_dir: str, found: Found) -> str:
    """Step 2 without --metrics-url: Prometheus scrapes every announced process and each target is up."""
    prometheus = Located.parse(prometheus_url)
    base = prometheus.url.rstrip("/")
    data = _prometheus_api(prometheus, "targets", state="active")
    scraped = {
        _address(t.get("scrapeUrl", "")): t
        for t in (data or {}).get("activeTargets", [])
        if urllib.parse.urlsplit(t.get("scrapeUrl", "")).path == METRICS_PATH
    }
    matched = [(address, scraped.get(_address(f"http://{address}{METRICS_PATH}"))) for address in found.announced]
    missing = [address for address, target in matched if target is None]
    if missing:
        files = str(Path(discovery_dir) / "*.json")
        raise CheckFailed(
            f"Prometheus at {base} does not scrape {', '.join(missing)}: give the scrape job file_sd_configs "
            f"with files: ['{files}'] and metrics_path: {METRICS_PATH} (see dashboards/prometheus.yml) and reload "
            "Prometheus; it reads new files within the refresh_interval of file_sd_configs (5 minutes by default)."
        )
    targets = [target for _, target in matched if target is not None]
    down = [t for t in targets if t.get("health") != "up"]
    if down:
        raise CheckFailed(f"Prometheus cannot scrape {'; '.join(_health(t) for t in down)}.")
    if targets:
        found.target = targets[0]
    jobs = sorted({str(t.get("labels", {}).get("job", "?")) for t in targets})
    return f"{len(targets)} target{'s' if len(targets) != 1 else ''} up (job {', '.join(jobs)})"


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
    """Step 4: Prometheus returns the endpoint's task_split_total series (target_info before the first split).

    For one endpoint the series of its own target; for the announced processes those of their job.
    """
    prometheus = Located.parse(prometheus_url)
    base = prometheus.url.rstrip("/")
    recorded = found is None or found.recorded
    metric = PROBE_METRIC if recorded else "target_info"
    selector: dict[str, str] = {}
    if found is not None and found.target is not None:
        selector["job"] = found.job
        if not found.announced:
            selector["instance"] = found.instance
    query = metric + ("{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in selector.items()) + "}" if selector else "")
    data = _prometheus_api(prometheus, "query", query=query)
    result = (data or {}).get("result", [])
    whose = "".join(f", {name} {value}" for name, value in selector.items()).replace(", ", " of ", 1)
    if not result:
        raise CheckFailed(
            f"Prometheus at {base} has no {metric} series{whose} yet. Wait one scrape interval; if it "
            "stays empty, check the job's metrics_path and that the target is the one checked above."
        )
    detail = f"{len(result)} {metric} series"
    return detail if recorded else f"{detail}; note: {NO_SPLIT_YET}"


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
    metrics_url: str | None,
    prometheus_url: str,
    grafana_url: str | None,
    api_key: str | None,
    discovery_dir: str | None = None,
) -> list[Check]:
    """The checks to run, in order: of one endpoint, or without `metrics_url` of every process in `discovery_dir`."""
    found = Found()
    # With --metrics-url, the fleet step also reports stale files; without it, the first step already has.
    stale_in = discovery_dir if metrics_url is not None else None
    if metrics_url is None and discovery_dir is not None:
        directory = discovery_dir
        steps = [
            Check("every announced process answers", lambda: check_announced(directory, found)),
            Check(
                "Prometheus scrapes every announced process",
                lambda: check_prometheus_announced(prometheus_url, directory, found),
            ),
        ]
    else:
        url = metrics_url or DEFAULT_METRICS_URL
        steps = [
            Check("metrics endpoint answers", lambda: check_metrics_endpoint(url, found)),
            Check("Prometheus scrapes the endpoint", lambda: check_prometheus_target(prometheus_url, url, found)),
        ]
    steps += [
        Check("every target of the job is up, once", lambda: check_fleet(prometheus_url, found, stale_in)),
        Check("Prometheus returns the series", lambda: check_prometheus_series(prometheus_url, found)),
    ]
    if grafana_url:
        steps.append(Check("Grafana has the dashboard", lambda: check_grafana_dashboard(grafana_url, api_key)))
    return steps


def _indented(text: str) -> str:
    return text.replace("\n", "\n      ")


def run_checks(steps: list[Check], out: TextIO, redact: Callable[[str], str] = lambda text: text) -> int:
    """Run `steps` in order, printing one line each (through `redact`); stop at the first failure.

    A detail or failure of several lines (one per announced process) is printed indented under its step.
    Returns the exit status.
    """
    for number, step in enumerate(steps, 1):
        try:
            detail = step.run()
        except CheckFailed as failure:
            print(redact(f"[{number}/{len(steps)}] FAIL {step.title}\n      {_indented(str(failure))}"), file=out)
            return 1
        head, _, rest = detail.partition("\n")
        shown = f"[{number}/{len(steps)}] ok   {step.title}: {head}" + (f"\n      {_indented(rest)}" if rest else "")
        print(redact(shown), file=out)
    print("all checks passed", file=out)
    return 0


def doctor_command(
    *,
    metrics_url: str | None,
    prometheus_url: str,
    grafana_url: str | None,
    api_key: str | None,
    discovery_dir: str | None = None,
) -> int:
    """Handler of `eddie-otel doctor`; returns the exit status (2 for a URL that is not one).

    Without `metrics_url` but with `discovery_dir`, the checks are of every process announced there;
    without either, of the endpoint at DEFAULT_METRICS_URL.
    """
    api_key = (api_key or os.environ.get(GRAFANA_API_KEY) or "").strip() or None
    redact = url_redactor((metrics_url, prometheus_url, grafana_url), [api_key])
    given = (("--metrics-url", metrics_url), ("--prometheus-url", prometheus_url), ("--grafana-url", grafana_url))
    try:
        for option, url in given:
            if url is not None:
                parse_url(url, option)
        if metrics_url is not None:
            check_metrics_url(metrics_url)
    except ConfigurationError as exc:
        print(redact(f"eddie-otel doctor: error: {exc}"), file=sys.stderr)
        return 2
    steps = checks(metrics_url, prometheus_url, grafana_url, api_key, discovery_dir)
    return run_checks(steps, sys.stdout, redact)
