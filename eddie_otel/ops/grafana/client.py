"""Grafana's HTTP API over the standard library: the calls grafana-setup makes, a dry-run transport, errors in words.

grafana-setup needs a dozen requests to four APIs (datasources, folders, dashboards,
alert-rule provisioning); urllib does them without adding an HTTP stack to the
environment eddie-otel is installed into. Every failure becomes a one-line
`GrafanaSetupError` that says what was being done, where, and what to do about
a refused credential.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from eddie_otel.environment import GRAFANA_API_KEY
from eddie_otel.ops.credentials import Located, shown
from eddie_otel.ops.grafana.errors import GrafanaHttpError, GrafanaSetupError, GrafanaUnreachable, NotGrafana

__all__ = [
    "TIMEOUT_SECONDS",
    "Credential",
    "DryRunTransport",
    "Endpoints",
    "GrafanaApi",
    "HttpTransport",
    "as_object",
    "found",
    "setup_errors",
]

TIMEOUT_SECONDS = 10.0

# What authenticates the requests: a service-account token, user:password in the URL, or nothing.
Credential: TypeAlias = Literal["token", "password"] | None


class Transport(Protocol):
    """Sends one request to Grafana's API and returns the decoded JSON answer (None when empty)."""

    def __call__(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Grafana's API does not redirect; following one would carry the credential to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpTransport:
    """Requests to the Grafana at `base` (no user info), with an `Authorization` value when given."""

    def __init__(self, base: str, authorization: str | None, redact: Callable[[str], str]) -> None:
        self._api = base.rstrip("/") + "/api"
        self._authorization = authorization
        self._redact = redact
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __call__(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        sent = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if self._authorization:
            sent["Authorization"] = self._authorization
        request = urllib.request.Request(self._api + path, data=data, headers=sent, method=method)
        try:
            with self._opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                return _decoded(response.read())
        except urllib.error.HTTPError as error:
            with error:
                answer = self._answer(error.read())
            raise GrafanaHttpError(error.code, answer) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise TimeoutError from None
            raise GrafanaUnreachable(self._redact(_reason(error.reason))) from None
        except (http.client.HTTPException, ConnectionError) as error:
            raise GrafanaUnreachable(self._redact(_reason(error))) from None

    def _answer(self, raw: bytes) -> Any:
        # An error body may echo the request, Authorization header included: hide it before anything keeps it.
        text = self._redact(raw.decode("utf-8", "replace"))
        try:
            return json.loads(text)
        except ValueError:
            return text


def _decoded(raw: bytes) -> Any:
    """The JSON in `raw`, None for an empty body; ValueError for anything else."""
    if not raw.strip():
        return None
    return json.loads(raw)


class DryRunTransport:
    """Prints each request and sends nothing.

    A GET answers 404, so the plan shows what a Grafana without any eddie object would get;
    where an object exists, the real run sends PUT instead, with the same body plus the stored version.
    """

    def __init__(self, api_path: str, emit: Callable[[str], None]) -> None:
        self._api_path = api_path
        self._emit = emit

    def __call__(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        self._emit(f"{method} {self._api_path}{path}")
        for name, value in (headers or {}).items():
            self._emit(f"{name}: {value}")
        if body is not None:
            self._emit(json.dumps(body, indent=2, ensure_ascii=False))
        if method == "GET":
            raise GrafanaHttpError(404, {"message": "dry run: nothing is sent"})
        return {}


class GrafanaApi:
    """The Grafana HTTP API calls grafana-setup makes, each one request over `transport`."""

    def __init__(self, transport: Transport) -> None:
        self._send = transport

    # datasources
    def get_datasource_by_uid(self, uid: str) -> Any:
        return self._send("GET", f"/datasources/uid/{uid}")

    def create_datasource(self, datasource: dict[str, Any]) -> Any:
        return self._send("POST", "/datasources", datasource)

    def update_datasource_by_uid(self, uid: str, datasource: dict[str, Any]) -> Any:
        return self._send("PUT", f"/datasources/uid/{uid}", datasource)

    # folders
    def get_all_folders(self) -> Any:
        return self._send("GET", "/folders")

    def get_folder(self, uid: str) -> Any:
        return self._send("GET", f"/folders/{uid}")

    def create_folder(self, title: str, uid: str) -> Any:
        return self._send("POST", "/folders", {"title": title, "uid": uid})

    def update_folder(self, uid: str, title: str, version: int | None = None) -> Any:
        body: dict[str, Any] = {"title": title}
        if version:
            body["version"] = version
        return self._send("PUT", f"/folders/{uid}", body)

    # dashboards
    def get_dashboard(self, uid: str) -> Any:
        return self._send("GET", f"/dashboards/uid/{uid}")

    def update_dashboard(self, payload: dict[str, Any]) -> Any:
        return self._send("POST", "/dashboards/db", payload)

    # alert-rule provisioning
    def get_alertrule(self, uid: str) -> Any:
        return self._send("GET", f"/v1/provisioning/alert-rules/{uid}")

    def create_alertrule(self, rule: dict[str, Any]) -> Any:
        return self._send("POST", "/v1/provisioning/alert-rules", rule)

    def update_alertrule(self, uid: str, rule: dict[str, Any]) -> Any:
        return self._send("PUT", f"/v1/provisioning/alert-rules/{uid}", rule)

    def delete_alertrule(self, uid: str) -> Any:
        return self._send("DELETE", f"/v1/provisioning/alert-rules/{uid}")

    def get_rule_group(self, folder_uid: str, group: str) -> Any:
        return self._send("GET", f"/v1/provisioning/folder/{folder_uid}/rule-groups/{group}")


@dataclass(frozen=True)
class Endpoints:
    """The parts of Grafana's API grafana-setup uses, all over one transport."""

    datasource: GrafanaApi
    folder: GrafanaApi
    dashboard: GrafanaApi
    alerting: GrafanaApi

    @classmethod
    def over(cls, transport: Transport) -> Endpoints:
        """The API over `transport`: an `HttpTransport` or the dry-run one."""
        api = GrafanaApi(transport)
        return cls(api, api, api, api)

    @classmethod
    def connect(cls, grafana_url: str, token: str | None, redact: Callable[[str], str]) -> Endpoints:
        """The API of the Grafana at `grafana_url`: the token when given, else the URL's user and password."""
        where = Located.parse(grafana_url)
        authorization = f"Bearer {token}" if token else where.authorization
        return cls.over(HttpTransport(where.url, authorization, redact))


def as_object(answer: Any) -> dict[str, Any]:
    """Grafana's answer as a JSON object ({} for an empty one); NotGrafana when it is something else."""
    if answer is None or answer == "":
        return {}
    if not isinstance(answer, dict):
        raise NotGrafana
    return answer


def found(fetch: Callable[[], Any]) -> dict[str, Any] | None:
    """The object `fetch` returns, or None when Grafana answers 404."""
    try:
        answer = fetch()
    except GrafanaHttpError as exc:
        if exc.status_code == 404:
            return None
        raise
    return as_object(answer)


@contextmanager
def setup_errors(grafana_url: str, credential: Credential, what: str) -> Iterator[None]:
    """Turn what a request raises while doing `what` into a one-line GrafanaSetupError."""
    where = shown(grafana_url)
    try:
        yield
    except GrafanaHttpError as exc:
        status = exc.status_code
        if status == 401:
            hint = {
                "token": "the API key was refused (wrong, expired or revoked)",
                "password": "the user and password in --grafana-url were refused",
                None: f"no API key was given: pass --api-key or set {GRAFANA_API_KEY}",
            }[credential]
            raise GrafanaSetupError(f"Grafana at {where} answered 401 Unauthorized while {what}: {hint}") from None
        if status == 403:
            who = "the API key" if credential == "token" else "the user"
            raise GrafanaSetupError(
                f"Grafana at {where} answered 403 Forbidden while {what}: {who} lacks permission "
                "(use a service account with the Admin role)"
            ) from None
        if 400 <= status < 500:
            raise GrafanaSetupError(
                f"Grafana at {where} rejected {what} ({status}): {_message(exc.response)}"
            ) from None
        raise GrafanaSetupError(
            f"Grafana at {where} failed while {what} ({status}): {_message(exc.response)}"
        ) from None
    except TimeoutError:
        raise GrafanaSetupError(
            f"Grafana at {where} did not answer within {TIMEOUT_SECONDS:g} s while {what}"
        ) from None
    except (NotGrafana, ValueError):
        # ValueError: a body that is not JSON.
        raise GrafanaSetupError(
            f"{where} did not answer like Grafana's HTTP API while {what}; is --grafana-url Grafana's base URL?"
        ) from None
    except GrafanaUnreachable as exc:
        raise GrafanaSetupError(f"cannot reach Grafana at {where}: {exc}") from None
    except OSError as exc:
        raise GrafanaSetupError(f"cannot reach Grafana at {where}: {_reason(exc)}") from None


def _message(response: Any) -> str:
    if isinstance(response, dict) and isinstance(response.get("message"), str):
        return " ".join(str(response["message"]).split())[:200] or "no message"
    text = str(response or "").strip()
    return " ".join(text.split())[:200] or "no message"


def _reason(exc: object) -> str:
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1).strip().lower()
    return " ".join(text.split())[:200] or type(exc).__name__
