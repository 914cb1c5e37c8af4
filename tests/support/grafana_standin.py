"""A stand-in for Grafana's HTTP API, for testing `eddie-otel grafana-setup`.

Grafana cannot be installed here, so this server implements the endpoints
grafana-setup uses, following the Grafana 11 HTTP API (datasources, folders,
dashboards, and the alerting provisioning API), with the checks Grafana makes on
them: the `Authorization: Bearer` service-account token (401 without or with a
wrong one, 403 for a Viewer writing), required fields, uid rules (at most 40
letters, digits, `-` or `_`), name and uid conflicts (409), the version check on
folder and datasource updates (412/409), `overwrite` and version handling when a
dashboard is saved (412 version-mismatch / name-exists), and alert rules that
must name an existing folder and datasource and whose condition must be one of
their queries. It keeps state, so a second run really meets what the first made.

It runs on an ephemeral loopback port in a thread; every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ADMIN = "Admin"
VIEWER = "Viewer"

_UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_EXPRESSION_UIDS = ("__expr__", "-100")
_EXPRESSION_TYPES = ("math", "reduce", "resample", "threshold", "classic_conditions", "sql")
_THRESHOLD_TYPES = ("gt", "lt", "within_range", "outside_range", "within_range_included", "outside_range_included")
_NO_DATA_STATES = ("Alerting", "NoData", "OK", "KeepLast")
_ERROR_STATES = ("Alerting", "Error", "OK", "KeepLast")


class ApiError(Exception):
    """An HTTP error answer: status and JSON body."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body = {"message": message, **extra}


@dataclass(frozen=True)
class Request:
    """One request the stand-in received."""

    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class State:
    """What the stand-in Grafana holds; tests read it to count and compare."""

    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        """A fresh numeric id, as Grafana's database gives."""
        self.next_id += 1
        return self.next_id - 1


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _check_uid(uid: object, what: str) -> str:
    if not isinstance(uid, str) or not uid:
        raise ApiError(400, f"{what} uid is required")
    if len(uid) > 40:
        raise ApiError(400, f"{what} uid too long, max 40 characters")
    if not _UID.match(uid):
        raise ApiError(400, f"{what} uid contains illegal characters")
    return uid


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, f"bad request data: {what} must be a JSON object")
    return body


def _string(body: dict[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{what}: {key} is required")
    return value


class GrafanaStandIn:
    """The stand-in server; use as a context manager, or start() and stop()."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {})
        self.state = State()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"/api/datasources/uid/([^/]+)"), self._get_datasource),
            ("POST", re.compile(r"/api/datasources"), self._create_datasource),
            ("PUT", re.compile(r"/api/datasources/uid/([^/]+)"), self._update_datasource),
            ("GET", re.compile(r"/api/folders"), self._list_folders),
            ("GET", re.compile(r"/api/folders/([^/]+)"), self._get_folder),
            ("POST", re.compile(r"/api/folders"), self._create_folder),
            ("PUT", re.compile(r"/api/folders/([^/]+)"), self._update_folder),
            ("GET", re.compile(r"/api/dashboards/uid/([^/]+)"), self._get_dashboard),
            ("POST", re.compile(r"/api/dashboards/db"), self._save_dashboard),
            ("GET", re.compile(r"/api/v1/provisioning/alert-rules/([^/]+)"), self._get_rule),
            ("POST", re.compile(r"/api/v1/provisioning/alert-rules"), self._create_rule),
            ("PUT", re.compile(r"/api/v1/provisioning/alert-rules/([^/]+)"), self._update_rule),
            ("DELETE", re.compile(r"/api/v1/provisioning/alert-rules/([^/]+)"), self._delete_rule),
            ("GET", re.compile(r"/api/v1/provisioning/folder/([^/]+)/rule-groups/([^/]+)"), self._get_group),
        ]

    # -- server ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234."""
        assert self._server is not None, "stand-in not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GrafanaStandIn:
        """Listen on an ephemeral loopback port, in a daemon thread."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Grafana serves
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read `requests` instead."""

            def _serve(self) -> None:
                status, body = standin._handle(self.command, self.path, self.headers, self._read())
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _read(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="grafana-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> GrafanaStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch -------------------------------------------------------------

    def _handle(self, method: str, raw_path: str, headers: Any, raw_body: bytes) -> tuple[int, Any]:
        path = raw_path.split("?", 1)[0]
        authorization = headers.get("Authorization")
        body: Any = None
        with self._lock:
            try:
                if raw_body:
                    try:
                        body = json.loads(raw_body)
                    except ValueError:
                        raise ApiError(400, "bad request data") from None
                self.requests.append(Request(method, path, authorization, body))
                role = self._authenticate(authorization)
                for route_method, pattern, handler in self._routes:
                    match = pattern.fullmatch(path)
                    if match and route_method == method:
                        if method != "GET" and role != ADMIN:
                            raise ApiError(
                                403,
                                "You'll need additional permissions to perform this action. "
                                f"Permissions needed: {_permission(method, path)}",
                                title="Access denied",
                                accessErrorId="ACE0947587429",
                            )
                        return handler(*match.groups(), body=body, headers=headers)
                raise ApiError(404, "Not found")
            except ApiError as exc:
                return exc.code, exc.body
            except Exception as exc:  # a stand-in bug must fail the test, not hang up on the client
                return 500, {"message": f"stand-in error: {exc!r}"}

    def _authenticate(self, authorization: str | None) -> str:
        if not authorization:
            raise ApiError(401, "Unauthorized")
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            raise ApiError(401, "Invalid API key", messageId="api-key.invalid", statusCode=401)
        return self.tokens[token]

    # -- datasources ----------------------------------------------------------

    def _datasource_answer(self, ds: dict[str, Any], message: str) -> tuple[int, Any]:
        return 200, {"datasource": ds, "id": ds["id"], "message": message, "name": ds["name"]}

    def _check_datasource(self, body: Any, uid: str) -> dict[str, Any]:
        body = _object(body, "datasource")
        name = _string(body, "name", "datasource")
        _string(body, "type", "datasource")
        if body.get("access") not in ("proxy", "direct"):
            raise ApiError(400, "datasource: access must be proxy or direct")
        url = body.get("url", "")
        if not isinstance(url, str) or (url and not re.match(r"^https?://[^/\s]+", url)):
            raise ApiError(400, "Validation error, invalid URL", error=f"invalid URL {url!r}")
        for other in self.state.datasources.values():
            if other["name"] == name and other["uid"] != uid:
                raise ApiError(409, "data source with the same name already exists")
        return body

    def _get_datasource(self, uid: str, **_: Any) -> tuple[int, Any]:
        if uid not in self.state.datasources:
            raise ApiError(404, "Data source not found")
        return 200, self.state.datasources[uid]

    def _create_datasource(self, body: Any, **_: Any) -> tuple[int, Any]:
        body = _object(body, "datasource")
        uid = _check_uid(body.get("uid"), "datasource")
        if uid in self.state.datasources:
            raise ApiError(409, "data source with the same uid already exists")
        body = self._check_datasource(body, uid)
        ds = {
            "isDefault": False,
            "jsonData": {},
            "basicAuth": False,
            **body,
            "id": self.state.new_id(),
            "orgId": 1,
            "version": 1,
            "readOnly": False,
        }
        self.state.datasources[uid] = ds
        return self._datasource_answer(ds, "Datasource added")

    def _update_datasource(self, uid: str, body: Any, **_: Any) -> tuple[int, Any]:
        stored = self.state.datasources.get(uid)
        if stored is None:
            raise ApiError(404, "Data source not found")
        if stored["readOnly"]:
            raise ApiError(403, "Cannot update read-only data source")
        body = self._check_datasource(body, uid)
        # Grafana: a version, when given, must not be older than the stored one; the new version is it + 1.
        version = body.get("version", 0)
        if not isinstance(version, int):
            raise ApiError(400, "bad request data: version must be an integer")
        if version and stored["version"] > version:
            raise ApiError(409, "Datasource has already been updated by someone else. Please reload and try again")
        ds = {**stored, **body, "uid": uid, "id": stored["id"], "orgId": 1, "version": version + 1}
        self.state.datasources[uid] = ds
        return self._datasource_answer(ds, "Datasource updated")

    # -- folders --------------------------------------------------------------

    def _folder_answer(self, folder: dict[str, Any]) -> dict[str, Any]:
        return {**folder, "url": f"/dashboards/f/{folder['uid']}/{_slug(folder['title'])}"}

    def _list_folders(self, **_: Any) -> tuple[int, Any]:
        return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in self.state.folders.values()]

    def _get_folder(self, uid: str, **_: Any) -> tuple[int, Any]:
        if uid not in self.state.folders:
            raise ApiError(404, "folder not found", status="not-found")
        return 200, self._folder_answer(self.state.folders[uid])

    def _create_folder(self, body: Any, **_: Any) -> tuple[int, Any]:
        body = _object(body, "folder")
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, "folder title cannot be empty")
        uid = _check_uid(body.get("uid"), "folder")
        if uid in self.state.folders:
            raise ApiError(409, "a folder with the same uid already exists")
        if any(folder["title"] == title for folder in self.state.folders.values()):
            raise ApiError(409, "a folder with the same name already exists")
        folder = {"id": self.state.new_id(), "uid": uid, "title": title, "version": 1}
        self.state.folders[uid] = folder
        return 200, self._folder_answer(folder)

    def _update_folder(self, uid: str, body: Any, **_: Any) -> tuple[int, Any]:
        stored = self.state.folders.get(uid)
        if stored is None:
            raise ApiError(404, "folder not found", status="not-found")
        body = _object(body, "folder")
        title = body.get("title", stored["title"])
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, "folder title cannot be empty")
        if not body.get("overwrite") and body.get("version") != stored["version"]:
            raise ApiError(412, "the folder has been changed by someone else", status="version-mismatch")
        folder = {**stored, "title": title, "version": stored["version"] + 1}
        self.state.folders[uid] = folder
        return 200, self._folder_answer(folder)

    # -- dashboards -----------------------------------------------------------

    def _get_dashboard(self, uid: str, **_: Any) -> tuple[int, Any]:
        entry = self.state.dashboards.get(uid)
        if entry is None:
            raise ApiError(404, "Dashboard not found")
        model = entry["dashboard"]
        meta = {
            "folderUid": entry["folderUid"],
            "version": model["version"],
            "slug": _slug(model["title"]),
            "provisioned": entry.get("provisioned", False),
        }
        return 200, {"dashboard": model, "meta": meta}

    def _save_dashboard(self, body: Any, **_: Any) -> tuple[int, Any]:
        body = _object(body, "save dashboard command")
        model = body.get("dashboard")
        if not isinstance(model, dict):
            raise ApiError(400, "bad request data: dashboard is required")
        title = model.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, "Dashboard title cannot be empty")
        folder_uid = body.get("folderUid", "")
        if folder_uid and folder_uid not in self.state.folders:
            raise ApiError(400, "folder not found")
        uid = model.get("uid")
        if uid is None or uid == "":
            uid = f"auto{self.state.next_id}"
        _check_uid(uid, "dashboard")
        overwrite = body.get("overwrite") is True
        stored = self.state.dashboards.get(uid)
        if stored is not None and stored.get("provisioned"):
            raise ApiError(400, "Cannot save provisioned dashboard")
        dashboard_id = model.get("id")
        if dashboard_id is not None and (stored is None or stored["dashboard"]["id"] != dashboard_id):
            raise ApiError(404, "Dashboard not found")
        if stored is not None and not overwrite and model.get("version") != stored["dashboard"]["version"]:
            raise ApiError(412, "The dashboard has been changed by someone else", status="version-mismatch")
        for other_uid, other in list(self.state.dashboards.items()):
            if other_uid != uid and other["folderUid"] == folder_uid and other["dashboard"]["title"] == title:
                if not overwrite:
                    raise ApiError(
                        412, "A dashboard with the same name in the folder already exists", status="name-exists"
                    )
                # Grafana: with overwrite, the same-titled dashboard is the one replaced.
                del self.state.dashboards[other_uid]
        version = stored["dashboard"]["version"] + 1 if stored else 1
        saved_id = stored["dashboard"]["id"] if stored else self.state.new_id()
        saved = {**model, "id": saved_id, "uid": uid, "version": version}
        self.state.dashboards[uid] = {"dashboard": saved, "folderUid": folder_uid, "message": body.get("message")}
        slug = _slug(title)
        return 200, {
            "id": saved_id,
            "uid": uid,
            "url": f"/d/{uid}/{slug}",
            "status": "success",
            "version": version,
            "slug": slug,
            "folderUid": folder_uid,
        }

    # -- alert rules ----------------------------------------------------------

    def _check_rule(self, body: Any, uid: str) -> dict[str, Any]:
        rule = _object(body, "alert rule")
        title = _string(rule, "title", "invalid alert rule")
        if len(title) > 190:
            raise ApiError(400, "invalid alert rule: title is longer than 190 characters")
        group = _string(rule, "ruleGroup", "invalid alert rule")
        if len(group) > 190:
            raise ApiError(400, "invalid alert rule: ruleGroup is longer than 190 characters")
        folder_uid = _string(rule, "folderUID", "invalid alert rule")
        if folder_uid not in self.state.folders:
            raise ApiError(400, f"invalid alert rule: folder {folder_uid} does not exist")
        if not isinstance(rule.get("orgID"), int):
            raise ApiError(400, "invalid alert rule: orgID is required")
        if rule.get("noDataState") not in _NO_DATA_STATES:
            raise ApiError(400, f"invalid alert rule: noDataState must be one of {', '.join(_NO_DATA_STATES)}")
        if rule.get("execErrState") not in _ERROR_STATES:
            raise ApiError(400, f"invalid alert rule: execErrState must be one of {', '.join(_ERROR_STATES)}")
        duration = rule.get("for")
        if not isinstance(duration, str) or not _DURATION.match(duration):
            raise ApiError(400, f"invalid alert rule: for: invalid duration {duration!r}")
        for key in ("labels", "annotations"):
            values = rule.get(key, {})
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise ApiError(400, f"invalid alert rule: {key} must map strings to strings")
        self._check_queries(rule)
        for other in self.state.rules.values():
            if other["uid"] != uid and other["folderUID"] == folder_uid and other["title"] == title:
                raise ApiError(
                    409,
                    "a conflicting alert rule is found: rule title under the same organisation and folder "
                    "should be unique",
                )
        return rule

    def _check_queries(self, rule: dict[str, Any]) -> None:
        data = rule.get("data")
        if not isinstance(data, list) or not data:
            raise ApiError(400, "invalid alert rule: no queries or expressions are found")
        refs: list[str] = []
        for query in data:
            if not isinstance(query, dict) or not isinstance(query.get("refId"), str) or not query["refId"]:
                raise ApiError(400, "invalid alert rule: every query needs a refId")
            ref = query["refId"]
            if ref in refs:
                raise ApiError(400, f"invalid alert rule: refId {ref} is used twice")
            model = query.get("model")
            if not isinstance(model, dict):
                raise ApiError(400, f"invalid query {ref}: model must be a JSON object")
            source = query.get("datasourceUid")
            if source in _EXPRESSION_UIDS:
                self._check_expression(ref, model, refs)
            elif source not in self.state.datasources:
                raise ApiError(400, f"invalid query {ref}: data source not found: {source}")
            elif not isinstance(model.get("expr"), str) or not model["expr"].strip():
                raise ApiError(400, f"invalid query {ref}: a Prometheus query needs expr")
            refs.append(ref)
        if rule.get("condition") not in refs:
            raise ApiError(
                400, f"invalid alert rule: condition {rule.get('condition')!r} does not exist, must be one of {refs}"
            )

    @staticmethod
    def _check_expression(ref: str, model: dict[str, Any], earlier: list[str]) -> None:
        kind = model.get("type")
        if kind not in _EXPRESSION_TYPES:
            raise ApiError(400, f"invalid query {ref}: unknown expression type {kind!r}")
        expression = model.get("expression")
        if not isinstance(expression, str) or not expression:
            raise ApiError(400, f"invalid query {ref}: expression is required")
        used = re.findall(r"\$\{?([A-Za-z0-9_]+)", expression) if kind == "math" else [expression]
        for name in used:
            if name not in earlier:
                raise ApiError(400, f"invalid query {ref}: expression refers to unknown query {name}")
        if kind == "threshold":
            conditions = model.get("conditions")
            evaluator = conditions[0].get("evaluator") if isinstance(conditions, list) and conditions else None
            if (
                not isinstance(evaluator, dict)
                or evaluator.get("type") not in _THRESHOLD_TYPES
                or not isinstance(evaluator.get("params"), list)
                or not evaluator["params"]
            ):
                raise ApiError(400, f"invalid query {ref}: threshold needs an evaluator with a type and params")

    def _get_rule(self, uid: str, **_: Any) -> tuple[int, Any]:
        if uid not in self.state.rules:
            # Grafana 11 answers this 404 with an empty body.
            return 404, None
        return 200, self.state.rules[uid]

    def _create_rule(self, body: Any, headers: Any, **_: Any) -> tuple[int, Any]:
        body = _object(body, "alert rule")
        uid = _check_uid(body.get("uid"), "alert rule")
        if uid in self.state.rules:
            raise ApiError(409, "conflicting UID")
        rule = self._check_rule(body, uid)
        stored = {**rule, "id": self.state.new_id(), "uid": uid, "orgID": 1, "provenance": _provenance(headers)}
        self.state.rules[uid] = stored
        return 201, stored

    def _update_rule(self, uid: str, body: Any, headers: Any, **_: Any) -> tuple[int, Any]:
        stored = self.state.rules.get(uid)
        if stored is None:
            return 404, None
        rule = self._check_rule(body, uid)
        provenance = _provenance(headers)
        if stored["provenance"] not in ("", provenance):
            raise ApiError(400, f"cannot change provenance from '{stored['provenance']}' to '{provenance}'")
        updated = {**rule, "id": stored["id"], "uid": uid, "orgID": 1, "provenance": provenance}
        self.state.rules[uid] = updated
        return 200, updated

    def _delete_rule(self, uid: str, **_: Any) -> tuple[int, Any]:
        self.state.rules.pop(uid, None)
        return 204, None

    def _get_group(self, folder_uid: str, group: str, **_: Any) -> tuple[int, Any]:
        rules = [
            rule for rule in self.state.rules.values() if rule["folderUID"] == folder_uid and rule["ruleGroup"] == group
        ]
        if not rules:
            raise ApiError(404, "rule group does not exist")
        return 200, {"title": group, "folderUid": folder_uid, "interval": 60, "rules": rules}


def _provenance(headers: Any) -> str:
    return "" if headers.get("X-Disable-Provenance") == "true" else "api"


def _permission(method: str, path: str) -> str:
    if path.startswith("/api/datasources"):
        return "datasources:create" if method == "POST" else "datasources:write"
    if path.startswith("/api/folders"):
        return "folders:create" if method == "POST" else "folders:write"
    if path.startswith("/api/dashboards"):
        return "dashboards:create"
    return "alert.provisioning:write"
