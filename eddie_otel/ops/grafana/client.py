"""The grafana-client adapter: the API elements grafana-setup uses, a dry-run stand-in, and its errors in words.

grafana-client's errors become one-line `GrafanaSetupError`s that say what was
being done, where, and what to do about a refused credential.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaServerError, GrafanaTimeoutError
from grafana_client.elements import AlertingProvisioning, Dashboard, Datasource, Folder

from eddie_otel.environment import GRAFANA_API_KEY
from eddie_otel.ops.grafana.errors import GrafanaSetupError, NotGrafana
from eddie_otel.ops.grafana.urls import shown

__all__ = [
    "TIMEOUT_SECONDS",
    "Credential",
    "DryRunClient",
    "Endpoints",
    "as_object",
    "found",
    "setup_errors",
]

TIMEOUT_SECONDS = 10.0

# What authenticates the requests: a service-account token, user:password in the URL, or nothing.
Credential: TypeAlias = Literal["token", "password"] | None


@dataclass(frozen=True)
class Endpoints:
    """The grafana-client API elements grafana-setup uses, all over one HTTP client."""

    datasource: Any
    folder: Any
    dashboard: Any
    alerting: Any

    @classmethod
    def over(cls, client: Any) -> Endpoints:
        """The elements over `client`, which may be grafana-client's own or the dry-run one."""
        return cls(
            _untyped(Datasource, client, None),
            _untyped(Folder, client),
            _untyped(Dashboard, client, None),
            _untyped(AlertingProvisioning, client),
        )

    @classmethod
    def connect(cls, base: str, token: str | None) -> Endpoints:
        """The elements of the Grafana at `base` (ending in "/"), authenticated with `token` when given."""
        api = GrafanaApi.from_url(base, credential=token, timeout=TIMEOUT_SECONDS)
        return cls(api.datasource, api.folder, api.dashboard, api.alertingprovisioning)


def _untyped(function: Any, *args: Any) -> Any:
    # grafana-client ships py.typed without annotations; calling it through Any keeps mypy strict here.
    return function(*args)


class DryRunClient:
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
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise
    return as_object(answer)


@contextmanager
def setup_errors(grafana_url: str, credential: Credential, what: str) -> Iterator[None]:
    """Turn what grafana-client raises while doing `what` into a one-line GrafanaSetupError."""
    where = shown(grafana_url)
    try:
        yield
    except GrafanaTimeoutError:
        raise GrafanaSetupError(
            f"Grafana at {where} did not answer within {TIMEOUT_SECONDS:g} s while {what}"
        ) from None
    except GrafanaClientError as exc:
        if exc.status_code == 401:
            hint = {
                "token": "the API key was refused (wrong, expired or revoked)",
                "password": "the user and password in --grafana-url were refused",
                None: f"no API key was given: pass --api-key or set {GRAFANA_API_KEY}",
            }[credential]
            raise GrafanaSetupError(f"Grafana at {where} answered 401 Unauthorized while {what}: {hint}") from None
        if exc.status_code == 403:
            who = "the API key" if credential == "token" else "the user"
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
    except (NotGrafana, ValueError):
        # ValueError: a body that is not JSON (niquests' JSONDecodeError is one).
        raise GrafanaSetupError(
            f"{where} did not answer like Grafana's HTTP API while {what}; is --grafana-url Grafana's base URL?"
        ) from None
    except (GrafanaException, OSError) as exc:
        # OSError: grafana-client lets niquests' connection errors through unwrapped.
        raise GrafanaSetupError(f"cannot reach Grafana at {where}: {_reason(exc)}") from None


def _message(response: Any) -> str:
    if isinstance(response, dict) and isinstance(response.get("message"), str):
        return str(response["message"])
    text = str(response or "").strip()
    return " ".join(text.split())[:200] or "no message"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1).strip().lower()
    return " ".join(text.split())[:200] or type(exc).__name__
