"""`eddie-otel grafana-setup`: the Prometheus datasource, folder, dashboard and alert rules in Grafana.

Every object has a fixed uid, so a rerun finds what the last run made (GET) and
updates it (PUT) instead of creating a copy (POST). The alert rules are the
Prometheus rules of `eddie_otel.ops.alerts` turned into Grafana-managed rules the
way Grafana's own Prometheus-rule conversion does it: the PromQL expression as an
instant query, then a math and a threshold expression that fire for every series
the query returns, exactly like Prometheus.

The API key goes into the `Authorization: Bearer` header and nowhere else: output,
errors and --dry-run show it as `<redacted>`.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaServerError, GrafanaTimeoutError
from grafana_client.elements import AlertingProvisioning, Dashboard, Datasource, Folder

from eddie_otel._version import __version__
from eddie_otel.errors import EddieOtelError
from eddie_otel.ops import alerts, assets

__all__ = [
    "API_KEY_VARIABLE",
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

API_KEY_VARIABLE = "GRAFANA_API_KEY"
DATASOURCE_UID = "eddie-prometheus"
DATASOURCE_NAME = "Eddie Prometheus"
FOLDER_UID = "eddie"
FOLDER_TITLE = "Eddie"
RULE_GROUP = alerts.GROUP

# Grafana's limit on every uid (datasource, folder, dashboard, alert rule).
_UID_MAX = 40
_UID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
_EXPRESSIONS = "__expr__"
_TIMEOUT_SECONDS = 10.0
_REDACTED = "<redacted>"
# How far back the alert query may look; the rules' own windows ([5m]) fit inside.
_QUERY_RANGE_SECONDS = 600
_PROMETHEUS_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


class GrafanaSetupError(EddieOtelError):
    """grafana-setup cannot go on; the message is one line for the operator."""


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


def alert_rule_payload(rule: alerts.Rule, folder_uid: str = FOLDER_UID) -> dict[str, Any]:
    """The Grafana-managed alert rule (provisioning API body) equivalent to the Prometheus rule `rule`."""
    alert = rule.alert
    query = {
        "refId": "A",
        "queryType": "",
        "relativeTimeRange": {"from": _QUERY_RANGE_SECONDS, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {
            "refId": "A",
            "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
            "expr": rule.expr,
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
        "uid": rule_uid(alert),
        "title": alert,
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
        "annotations": {"summary": grafana_template(rule.summary), "description": grafana_template(rule.description)},
        "isPaused": False,
    }


def _redactor(secrets: Sequence[str]) -> Callable[[str], str]:
    hidden = [secret for secret in secrets if secret]

    def redact(text: str) -> str:
        for secret in hidden:
            text = text.replace(secret, _REDACTED)
        return text

    return redact


def _http_url(flag: str, raw: str) -> str:
    try:
        parts = urlsplit(raw.strip())
    except ValueError:  # an unbalanced IPv6 bracket
        raise GrafanaSetupError(f"{flag} is not a valid URL: {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaSetupError(f"{flag} must be an http:// or https:// URL with a host, not {raw!r}")
    try:
        parts.port  # noqa: B018 - urlsplit only checks the port when it is read
    except ValueError:
        raise GrafanaSetupError(f"{flag} has an invalid port: {raw!r}") from None
    return raw.strip()


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _shown(url: str) -> str:
    """`url` without user:password, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip("/")


@dataclass(frozen=True)
class _Endpoints:
    """The grafana-client API elements grafana-setup uses, all over one HTTP client."""

    datasource: Any
    folder: Any
    dashboard: Any
    alerting: Any

    @classmethod
    def over(cls, client: Any) -> _Endpoints:
        """The elements over `client`, which may be grafana-client's own or the dry-run one."""
        return cls(
            _untyped(Datasource, client, None),
            _untyped(Folder, client),
            _untyped(Dashboard, client, None),
            _untyped(AlertingProvisioning, client),
        )


def _untyped(function: Any, *args: Any) -> Any:
    # grafana-client ships py.typed without annotations; calling it through Any keeps mypy strict here.
    return function(*args)


class _DryRunClient:
    """Takes the place of grafana-client's HTTP client: prints each request and sends nothing.

    A GET answers 404, so the plan shows what a Grafana without any eddie object would get;
    where an object exists, the real run sends PUT instead, with the same body plus the stored version.
    """

    def __init__(self, api_path: str, emit: Callable[[str], None]) -> None:
        self._api_path = api_path
        self._emit = emit

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise AttributeError(method)

        def request(path: str, json: Any = None, headers: Mapping[str, str] | None = None, **_: Any) -> Any:
            self._emit(f"{method} {self._api_path}{path}")
            for name, value in (headers or {}).items():
                self._emit(f"{name}: {value}")
            if json is not None:
                self._emit(_dump(json))
            if method == "GET":
                raise _untyped(GrafanaClientError, 404, {"message": "dry run"}, "dry run: nothing is sent")
            return {}

        return request


def _dump(body: Any) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False)


@dataclass
class _Run:
    """One grafana-setup run: where to, with what, and how to report."""

    endpoints: _Endpoints
    grafana_url: str
    prometheus_url: str
    dashboard: dict[str, Any]
    rules: list[dict[str, Any]]
    say: Callable[[str], None]
    dry_run: bool
    credential: Literal["token", "password"] | None
    folder_uid: str = FOLDER_UID

    def _verb(self, created: bool) -> str:
        if self.dry_run:
            return "would be created, or updated where it exists"
        return "created" if created else "updated"

    @contextmanager
    def _step(self, what: str) -> Iterator[None]:
        where = _shown(self.grafana_url)
        try:
            yield
        except GrafanaTimeoutError:
            raise GrafanaSetupError(
                f"Grafana at {where} did not answer within {_TIMEOUT_SECONDS:g} s while {what}"
            ) from None
        except GrafanaClientError as exc:
            if exc.status_code == 401:
                hint = {
                    "token": "the API key was refused (wrong, expired or revoked)",
                    "password": "the user and password in --grafana-url were refused",
                    None: f"no API key was given: pass --api-key or set {API_KEY_VARIABLE}",
                }[self.credential]
                raise GrafanaSetupError(f"Grafana at {where} answered 401 Unauthorized while {what}: {hint}") from None
            if exc.status_code == 403:
                who = "the API key" if self.credential == "token" else "the user"
                raise GrafanaSetupError(
                    f"Grafana at {where} answered 403 Forbidden while {what}: {who} lacks permission "
                    "(use a service account with the Admin role)"
                ) from None
            raise GrafanaSetupError(
                f"Grafana at {where} rejected {what} ({exc.status_code}): {_message(exc.response)}"
            ) from None
        except GrafanaServerError as exc:
            raise GrafanaSetupError(
                f"Grafana at {where} failed while {what} ({exc.status_code}): {_message(exc.response)}"
            ) from None
        except (_NotGrafana, ValueError):
            # ValueError: a body that is not JSON (niquests' JSONDecodeError is one).
            raise GrafanaSetupError(
                f"{where} did not answer like Grafana's HTTP API while {what}; is --grafana-url Grafana's base URL?"
            ) from None
        except (GrafanaException, OSError) as exc:
            # OSError: grafana-client lets niquests' connection errors through unwrapped.
            raise GrafanaSetupError(f"cannot reach Grafana at {where}: {_reason(exc)}") from None

    def _get(self, fetch: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            found = fetch()
        except GrafanaClientError as exc:
            if exc.status_code == 404:
                return None
            raise
        return _object(found)

    def save_datasource(self) -> None:
        """Create or update the Prometheus datasource."""
        api = self.endpoints.datasource
        with self._step(f"saving datasource {DATASOURCE_UID}"):
            existing = self._get(lambda: api.get_datasource_by_uid(DATASOURCE_UID))
            if existing is not None and existing.get("readOnly"):
                self.say(f"datasource {DATASOURCE_UID}: provisioned from files in Grafana (read-only), left as it is")
                return
            if existing is None:
                _object(api.create_datasource(datasource_payload(self.prometheus_url)))
            else:
                api.update_datasource_by_uid(DATASOURCE_UID, datasource_payload(self.prometheus_url, existing))
        self.say(
            f"datasource {DATASOURCE_UID} ({DATASOURCE_NAME} → {self.prometheus_url}): {self._verb(existing is None)}"
        )

    def save_folder(self) -> None:
        """Create or update the eddie folder, or use a folder of the same title made another way."""
        api = self.endpoints.folder
        with self._step(f"saving folder {FOLDER_UID}"):
            existing = self._get(lambda: api.get_folder(FOLDER_UID))
            if existing is None:
                # Dashboard provisioning from files (as in `eddie-otel stack`) makes a folder by title with a
                # generated uid; Grafana refuses a second folder of that title, so use that one.
                same_title = self._folder_titled(FOLDER_TITLE)
                if same_title is not None:
                    self.folder_uid = same_title
                    self.say(f"folder {same_title} ({FOLDER_TITLE}): exists, used as it is")
                    return
                _object(api.create_folder(FOLDER_TITLE, uid=FOLDER_UID))
            else:
                version = existing.get("version")
                api.update_folder(FOLDER_UID, title=FOLDER_TITLE, version=version if isinstance(version, int) else None)
        self.say(f"folder {FOLDER_UID} ({FOLDER_TITLE}): {self._verb(existing is None)}")

    def _folder_titled(self, title: str) -> str | None:
        from_grafana: Any = None
        try:
            from_grafana = self.endpoints.folder.get_all_folders()
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
        if not isinstance(from_grafana, list):
            return None
        for folder in from_grafana:
            if isinstance(folder, dict) and folder.get("title") == title and isinstance(folder.get("uid"), str):
                return str(folder["uid"])
        return None

    def save_dashboard(self) -> str | None:
        """Create or overwrite the dashboard; returns its path in Grafana when known."""
        api = self.endpoints.dashboard
        uid = str(self.dashboard["uid"])
        with self._step(f"saving dashboard {uid}"):
            existing = self._get(lambda: api.get_dashboard(uid))
            meta = existing.get("meta") if existing else None
            if isinstance(meta, dict) and meta.get("provisioned"):
                # Grafana refuses API saves of a dashboard it loads from files; the files are the truth there.
                self.say(f"dashboard {uid}: provisioned from files in Grafana (read-only), left as it is")
                return None
            saved = _object(api.update_dashboard(dashboard_payload(self.dashboard, self.folder_uid)))
        version = saved.get("version")
        suffix = f", version {version}" if isinstance(version, int) else ""
        self.say(f"dashboard {uid} ({self.dashboard['title']}): {self._verb(existing is None)}{suffix}")
        url = saved.get("url")
        return url if isinstance(url, str) else None

    def save_alert_rules(self) -> None:
        """Create or update one Grafana-managed alert rule per Prometheus rule, then drop rules no longer shipped."""
        api = self.endpoints.alerting
        wanted = {rule["uid"] for rule in self.rules}
        for rule in self.rules:
            uid = rule["uid"]
            rule = {**rule, "folderUID": self.folder_uid}
            with self._step(f"saving alert rule {rule['title']}"):
                existing = self._get(functools.partial(api.get_alertrule, uid))
                if existing is None:
                    _object(api.create_alertrule(rule))
                else:
                    api.update_alertrule(uid, rule)
            self.say(f"alert rule {rule['title']} ({uid}, group {RULE_GROUP}): {self._verb(existing is None)}")
        if self.dry_run:
            return
        with self._step(f"reading rule group {RULE_GROUP}"):
            group = self._get(lambda: api.get_rule_group(self.folder_uid, RULE_GROUP)) or {}
        stale = [
            rule
            for rule in group.get("rules") or []
            if isinstance(rule, dict) and isinstance(rule.get("uid"), str) and rule["uid"] not in wanted
        ]
        for rule in stale:
            with self._step(f"removing alert rule {rule['uid']}"):
                api.delete_alertrule(rule["uid"])
            self.say(
                f"alert rule {rule.get('title', rule['uid'])} ({rule['uid']}): removed, eddie-otel no longer ships it"
            )


class _NotGrafana(Exception):
    """An answer that is not the JSON object Grafana's API sends."""


def _object(answer: Any) -> dict[str, Any]:
    if answer is None or answer == "":
        return {}
    if not isinstance(answer, dict):
        raise _NotGrafana
    return answer


def _message(response: Any) -> str:
    if isinstance(response, dict) and isinstance(response.get("message"), str):
        return str(response["message"])
    text = str(response or "").strip()
    return " ".join(text.split())[:200] or "no message"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip().lower()
    return " ".join(text.split())[:200] or type(exc).__name__


def _rules() -> list[dict[str, Any]]:
    return [alert_rule_payload(rule) for rule in alerts.rules()]


def _dashboard_path(raw: str | None) -> Path:
    if raw is not None:
        return Path(raw)
    return assets.asset_path(assets.DASHBOARD)


def setup_command(args: argparse.Namespace) -> int:
    """Handler of `eddie-otel grafana-setup`; returns the exit status."""
    token = args.api_key if args.api_key is not None else os.environ.get(API_KEY_VARIABLE)
    token = token.strip() if token else None
    password = _password(args.grafana_url)
    # A password in --prometheus-url ends up in the datasource URL Grafana stores, but not on screen.
    redact = _redactor([s for s in (token, password, _password(args.prometheus_url)) if s])

    def say(line: str) -> None:
        print(redact(line), flush=True)

    try:
        grafana_url = _http_url("--grafana-url", args.grafana_url)
        prometheus_url = _http_url("--prometheus-url", args.prometheus_url)
        dashboard = load_dashboard(_dashboard_path(args.dashboard))
        rules = _rules()
        # from_url reads a path prefix only when it ends in "/" (Grafana served under /grafana/).
        base = grafana_url.rstrip("/") + "/"
        if args.dry_run:
            api_path = urlsplit(base).path + "api"
            say(f"dry run: nothing is sent to {_shown(grafana_url)}; every request would carry")
            say(
                f"Authorization: Bearer {_REDACTED}"
                if token
                else "no Authorization header (no --api-key or GRAFANA_API_KEY given)"
            )
            endpoints = _Endpoints.over(_DryRunClient(api_path, say))
        else:
            api = GrafanaApi.from_url(base, credential=token, timeout=_TIMEOUT_SECONDS)
            endpoints = _Endpoints(api.datasource, api.folder, api.dashboard, api.alertingprovisioning)
        run = _Run(
            endpoints,
            grafana_url,
            prometheus_url,
            dashboard,
            rules,
            say,
            dry_run=args.dry_run,
            credential="token" if token else "password" if password else None,
        )
        run.save_datasource()
        run.save_folder()
        path = run.save_dashboard()
        run.save_alert_rules()
    except GrafanaSetupError as exc:
        print(f"eddie-otel grafana-setup: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    if args.dry_run:
        say("dry run: nothing was sent")
    else:
        say(f"done: {_shown(grafana_url)}{path}" if path else "done")
    return 0
