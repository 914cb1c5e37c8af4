"""The few Docker Engine calls the watcher makes, behind a small interface that a test can stand in for.

`connect()` opens the Docker SDK's low-level client (the `docker` extra) on DOCKER_HOST,
the given URL, or the local socket. Every failure becomes one of two exceptions: `Vanished`
(the container is gone: 404) or `EngineError` with a one-line reason.
"""

from __future__ import annotations

import datetime
import errno
import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

__all__ = ["Engine", "EngineError", "EventStream", "Vanished", "connect", "engine_timestamp", "one_line_reason"]

# Seconds a call may take before the engine counts as unreachable. A stats call waits for the
# engine's next collection (up to a second), so this leaves ample room.
CALL_TIMEOUT_SECONDS = 10
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


class EngineError(Exception):
    """The engine cannot be reached or refused a call; the message is one line."""


class Vanished(Exception):
    """The container is gone (removed between an event and the call about it)."""


class EventStream(Protocol):
    """The engine's events as they happen (decoded JSON objects); `close()` ends the iteration from any thread."""

    def __iter__(self) -> Iterator[Mapping[str, Any]]: ...

    def close(self) -> None: ...


class Engine(Protocol):
    """What the watcher asks a Docker Engine."""

    def now(self) -> str:
        """The engine's clock as `seconds.nanoseconds`, the form the events' `since` takes."""
        ...

    def events(self, since: str, label: str) -> EventStream:
        """Container events from `since` on, of containers carrying `label` (KEY or KEY=VALUE)."""
        ...

    def containers(self, label: str) -> list[Mapping[str, Any]]:
        """Every container (running or not) carrying `label`, as the list call returns them."""
        ...

    def inspect(self, container_id: str) -> Mapping[str, Any]:
        """The inspect JSON of one container; Vanished when it is gone."""
        ...

    def stats(self, container_id: str) -> Mapping[str, Any]:
        """One stats reading of one container; Vanished when it is gone."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


def engine_timestamp(text: str) -> str:
    """An RFC 3339 time with nanoseconds (the engine's `SystemTime`) as `seconds.nanoseconds`."""
    match = _TIME.match(text.strip())
    if match is None:
        raise EngineError(f"the engine's clock reads {text[:40]!r}, not an RFC 3339 time")
    base, fraction, zone = match.groups()
    moment = datetime.datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return f"{int(moment.timestamp())}.{(fraction or '').ljust(9, '0')}"


def one_line_reason(error: BaseException) -> str:
    """Why a call to the engine failed, in a few words (the deepest cause that says it plainly)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, PermissionError) or getattr(current, "errno", None) == errno.EACCES:
            return "permission denied on the engine's socket"
        if isinstance(current, FileNotFoundError) or getattr(current, "errno", None) == errno.ENOENT:
            return "no engine socket at that path"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        current = current.__cause__ or current.__context__ or (current.args[0] if _wraps(current) else None)
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]


def _wraps(error: BaseException) -> bool:
    # requests and urllib3 keep the underlying error as their first argument rather than as a cause.
    return bool(error.args) and isinstance(error.args[0], BaseException)


class _SdkEngine:
    """The Engine interface over the Docker SDK's APIClient."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        import docker.errors
        import requests.exceptions

        try:
            return call(*args, **kwargs)
        except docker.errors.NotFound as error:
            raise Vanished(what) from error
        except docker.errors.APIError as error:
            raise EngineError(f"{what}: {one_line_reason(error)}") from error
        except (requests.exceptions.RequestException, OSError) as error:
            raise EngineError(one_line_reason(error)) from error

    def now(self) -> str:
        info = self._call("engine info", self._client.info)
        return engine_timestamp(str(info.get("SystemTime", "")))

    def events(self, since: str, label: str) -> EventStream:
        filters = {"type": "container", "label": label}
        stream: EventStream = self._call("events", self._client.events, since=since, filters=filters, decode=True)
        return stream

    def containers(self, label: str) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = self._call(
            "list containers", self._client.containers, all=True, filters={"label": label}
        )
        return found

    def inspect(self, container_id: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = self._call(
            f"inspect {container_id[:12]}", self._client.inspect_container, container_id
        )
        return found

    def stats(self, container_id: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = self._call(
            f"stats {container_id[:12]}", self._client.stats, container_id, stream=False, one_shot=True
        )
        return found

    def close(self) -> None:
        self._client.close()


def connect(docker_host: str | None = None) -> Engine:
    """A connection to the engine at `docker_host` (None: DOCKER_HOST, else the local socket); EngineError if none."""
    try:
        import docker
        import docker.utils
    except ModuleNotFoundError as error:
        raise EngineError("the Docker watcher needs the docker extra: pip install 'eddie-otel[docker]'") from error
    import requests.exceptions

    try:
        settings: dict[str, Any] = dict(docker.utils.kwargs_from_env())
        if docker_host is not None:
            settings["base_url"] = docker_host
        # version="auto" asks the engine which API it speaks: the first call, so an absent engine fails here.
        client = docker.APIClient(version="auto", timeout=CALL_TIMEOUT_SECONDS, **settings)
    except docker.errors.DockerException as error:
        raise EngineError(one_line_reason(error)) from error
    except (requests.exceptions.RequestException, OSError) as error:
        raise EngineError(one_line_reason(error)) from error
    return _SdkEngine(client)
