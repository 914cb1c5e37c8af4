"""A Docker Engine stand-in for the watcher's unit tests: containers, events and stats in memory, faults on demand."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from eddie_otel.docker.engine import EngineError, Vanished

__all__ = ["FakeEngine"]

_END = object()


class _Stream:
    def __init__(self, engine: FakeEngine) -> None:
        self._engine = engine
        self._queue: queue.Queue[Any] = queue.Queue()

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            yield item

    def close(self) -> None:
        self._queue.put(_END)


class FakeEngine:
    """One engine: `connect()` is what the watcher calls; `down` makes every call fail as an absent engine would."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.containers_by_id: dict[str, dict[str, Any]] = {}
        self.usage: dict[str, dict[str, Any]] = {}
        self.down: str | None = None
        self.calls: list[str] = []
        self.vanish_on_inspect: set[str] = set()
        self._streams: list[_Stream] = []
        self._ids = itertools.count(1)
        self._clock = itertools.count(1_000)

    # ---------------------------------------------------------- the test's side

    def connect(self) -> FakeEngine:
        self._check()
        return self

    def _check(self) -> None:
        if self.down is not None:
            raise EngineError(self.down)

    def run(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        nano_cpus: int = 0,
        memory: int = 0,
        quota: int = 0,
        period: int = 0,
        emit: bool = True,
    ) -> str:
        container_id = f"{next(self._ids):064x}"
        with self.lock:
            self.containers_by_id[container_id] = {
                "Id": container_id,
                "Name": f"/{name}",
                "Config": {"Labels": dict(labels if labels is not None else {"eddie.agent": "1"})},
                "HostConfig": {"NanoCpus": nano_cpus, "Memory": memory, "CpuQuota": quota, "CpuPeriod": period},
                "State": {"Running": True, "StartedAt": f"start-{next(self._clock)}"},
            }
        if emit:
            self.emit(container_id, "start")
        return container_id

    def update(self, container_id: str, **host: int) -> None:
        with self.lock:
            self.containers_by_id[container_id]["HostConfig"].update(host)
        self.emit(container_id, "update")

    def stop(self, container_id: str) -> None:
        with self.lock:
            self.containers_by_id[container_id]["State"]["Running"] = False
        self.emit(container_id, "die")

    def restart(self, container_id: str) -> None:
        with self.lock:
            state = self.containers_by_id[container_id]["State"]
            state["Running"] = True
            state["StartedAt"] = f"start-{next(self._clock)}"
        self.emit(container_id, "start")

    def remove(self, container_id: str) -> None:
        with self.lock:
            self.containers_by_id.pop(container_id)
            self.usage.pop(container_id, None)
        self.emit(container_id, "destroy")

    def set_usage(self, container_id: str, cpu_ns: int, throttled_ns: int, usage: int, inactive: int = 0) -> None:
        self.usage[container_id] = {
            "cpu_stats": {"cpu_usage": {"total_usage": cpu_ns}, "throttling_data": {"throttled_time": throttled_ns}},
            "memory_stats": {"usage": usage, "stats": {"total_inactive_file": inactive}},
        }

    def emit(self, container_id: str, action: str) -> None:
        labels = self.containers_by_id.get(container_id, {}).get("Config", {}).get("Labels", {})
        event = {
            "Type": "container",
            "Action": action,
            "Actor": {"ID": container_id, "Attributes": dict(labels)},
            "timeNano": next(self._clock) * 1_000_000_000,
        }
        for stream in list(self._streams):
            if "eddie.agent" in labels or action == "destroy":
                stream._queue.put(event)

    def crash(self, reason: str = "connection refused") -> None:
        """The engine goes away: every open event stream ends, every call fails."""
        self.down = reason
        for stream in self._streams:
            stream.close()
        self._streams.clear()

    def come_back(self) -> None:
        self.down = None

    # ---------------------------------------------------------- the Engine interface

    def now(self) -> str:
        self._check()
        self.calls.append("now")
        return "1000.000000000"

    def events(self, since: str, label: str) -> _Stream:
        self._check()
        self.calls.append("events")
        stream = _Stream(self)
        self._streams.append(stream)
        return stream

    def containers(self, label: str) -> list[Mapping[str, Any]]:
        self._check()
        self.calls.append("containers")
        with self.lock:
            return [
                {"Id": found["Id"], "State": "running" if found["State"]["Running"] else "exited"}
                for found in self.containers_by_id.values()
                if label in found["Config"]["Labels"]
            ]

    def inspect(self, container_id: str) -> Mapping[str, Any]:
        self._check()
        if container_id in self.vanish_on_inspect:
            raise Vanished(container_id)
        with self.lock:
            found = self.containers_by_id.get(container_id)
            if found is None:
                raise Vanished(container_id)
            return {
                **found,
                "HostConfig": dict(found["HostConfig"]),
                "State": dict(found["State"]),
            }

    def stats(self, container_id: str) -> Mapping[str, Any]:
        self._check()
        if container_id not in self.containers_by_id:
            raise Vanished(container_id)
        return self.usage.get(container_id, {"cpu_stats": {}, "memory_stats": {}})

    def close(self) -> None:
        pass
