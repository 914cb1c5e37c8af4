"""File-based discovery: each serving process announces its endpoint in a directory Prometheus reads.

A process that serves metrics writes `DIR/<service.name>-<service.instance.id>.json` in
Prometheus `file_sd` format once its port is bound, atomically (a temporary file renamed
into place), and removes it when it shuts down or the process ends (`runtime` arranges
that). The file also carries the writer's host name and process id as `__meta_eddie_*`
labels, which Prometheus drops after relabelling: they only let the next process on the
same host, or `eddie-otel doctor`, recognise a file whose process is gone (killed,
crashed) and remove it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from eddie_otel.environment import EDDIE_OTEL_DISCOVERY_DIR
from eddie_otel.errors import EddieOtelError

__all__ = ["Announcement", "DiscoveryError", "advertised_host", "is_stale", "read_target", "remove_stale"]

logger = logging.getLogger("eddie_otel")

HOST_LABEL = "__meta_eddie_hostname"
PID_LABEL = "__meta_eddie_pid"
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


class DiscoveryError(EddieOtelError):
    """The discovery directory cannot be written (missing permission, full, not a directory)."""


def advertised_host(bound_host: str, advertise: str | None) -> str:
    """The host to announce: `advertise` if given, else the bound host (this host's name for a wildcard)."""
    if advertise:
        return advertise
    if bound_host in _WILDCARDS:
        return socket.gethostname()
    return bound_host


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_target(path: Path) -> dict[str, Any] | None:
    """The one target group of a discovery file, or None when it is not one eddie-otel wrote."""
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        return None
    group: dict[str, Any] = groups[0]
    return group


def is_stale(path: Path) -> bool:
    """Whether the discovery file at `path` was written on this host by a process that is gone."""
    group = read_target(path)
    if group is None:
        return False
    labels = group.get("labels", {})
    if labels.get(HOST_LABEL) != socket.gethostname():
        return False
    try:
        pid = int(labels.get(PID_LABEL, ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale(directory: Path) -> list[Path]:
    """Remove the discovery files in `directory` left by processes of this host that are gone."""
    removed = []
    for path in sorted(directory.glob("*.json")):
        if is_stale(path):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as error:
                logger.warning("eddie-otel: could not remove the stale discovery file %s: %s", path, _reason(error))
                continue
            removed.append(path)
            logger.info("eddie-otel: removed the stale discovery file %s", path)
    return removed


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


class Announcement:
    """This process's discovery file: written by `write()`, removed by `remove()`."""

    def __init__(self, directory: Path, service_name: str, instance_id: str) -> None:
        self.path = directory / f"{service_name}-{instance_id}.json"
        self._directory = directory
        self._service_name = service_name
        self._instance_id = instance_id
        self._pid = os.getpid()

    def write(self, host: str, port: int) -> None:
        """Announce host:port, replacing any earlier announcement atomically.

        DiscoveryError, naming EDDIE_OTEL_DISCOVERY_DIR, when the directory cannot be written.
        """
        try:
            self._write(host, port)
        except OSError as error:
            if isinstance(error, FileExistsError):
                problem = "is not a directory"
            else:
                problem = f"is not writable: {_reason(error)}"
            raise DiscoveryError(f"{EDDIE_OTEL_DISCOVERY_DIR}={self._directory} {problem}") from None

    def _write(self, host: str, port: int) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        remove_stale(self._directory)
        group = {
            "targets": [_target(host, port)],
            "labels": {
                "service_name": self._service_name,
                "service_instance_id": self._instance_id,
                HOST_LABEL: socket.gethostname(),
                PID_LABEL: str(self._pid),
            },
        }
        handle, temporary = tempfile.mkstemp(prefix=".eddie-", suffix=".tmp", dir=self._directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump([group], file)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def remove(self) -> None:
        """Withdraw the announcement (only from the process that made it); never raises.

        It runs at exit and from signal handlers, where an error has nowhere to go: a file
        that cannot be removed is left for `remove_stale` to find once this process is gone.
        """
        if os.getpid() != self._pid:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
