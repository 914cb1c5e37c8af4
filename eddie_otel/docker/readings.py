"""What the watcher reads from the Docker Engine's answers: limits, usage, and the adjustments between two limits.

Pure functions of the JSON the engine returns (`GET /containers/{id}/json` and
`GET /containers/{id}/stats`), so that each rule is tested without an engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CPU_PERIOD", "Limits", "Usage", "adjustments", "limits", "usage"]

# The CFS period the engine uses when a container sets CpuQuota without CpuPeriod (microseconds).
DEFAULT_CPU_PERIOD = 100_000


@dataclass(frozen=True)
class Limits:
    """A container's limits: CPU in millicores and memory in bytes; None where it has no limit."""

    cpu_millicores: float | None
    memory_bytes: int | None


@dataclass(frozen=True)
class Usage:
    """One stats reading: cumulative CPU and throttled seconds, and memory as `docker stats` shows it."""

    cpu_seconds: float
    throttled_seconds: float
    memory_bytes: int


def _number(mapping: Mapping[str, Any], name: str) -> int:
    value = mapping.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def limits(inspected: Mapping[str, Any]) -> Limits:
    """The limits in a container's inspect JSON: `NanoCpus` (`--cpus`), else `CpuQuota`/`CpuPeriod`, and `Memory`."""
    host = inspected.get("HostConfig") or {}
    nano_cpus = _number(host, "NanoCpus")
    quota = _number(host, "CpuQuota")
    cpu: float | None = None
    if nano_cpus:
        cpu = nano_cpus / 1e6
    elif quota:
        cpu = quota * 1000 / (_number(host, "CpuPeriod") or DEFAULT_CPU_PERIOD)
    memory = _number(host, "Memory")
    return Limits(cpu, memory or None)


def _direction(old: float | None, new: float | None) -> str | None:
    # No limit is the most there is: setting one is a step down, removing it a step up.
    if old == new:
        return None
    if new is None:
        return "up"
    if old is None:
        return "down"
    return "up" if new > old else "down"


def adjustments(old: Limits, new: Limits) -> list[str]:
    """The elastic adjustments from `old` to `new`: cpu_up, cpu_down, memory_up, memory_down (each at most once)."""
    found = []
    cpu = _direction(old.cpu_millicores, new.cpu_millicores)
    if cpu is not None:
        found.append(f"cpu_{cpu}")
    memory = _direction(old.memory_bytes, new.memory_bytes)
    if memory is not None:
        found.append(f"memory_{memory}")
    return found


def usage(stats: Mapping[str, Any]) -> Usage | None:
    """The usage in one stats answer; None when it holds none (the container is not running).

    Memory is what `docker stats` shows: `memory_stats.usage` less the inactive file pages
    (`total_inactive_file` on cgroup v1, `inactive_file` on v2) when they are smaller.
    """
    memory = stats.get("memory_stats") or {}
    cpu = stats.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    used = memory.get("usage")
    if not isinstance(used, int) or not isinstance(total, int):
        return None
    pages = memory.get("stats") or {}
    inactive = pages.get("total_inactive_file")
    if not isinstance(inactive, int):
        inactive = pages.get("inactive_file")
    if isinstance(inactive, int) and inactive < used:
        used -= inactive
    throttled = (cpu.get("throttling_data") or {}).get("throttled_time")
    throttled_ns = throttled if isinstance(throttled, int) else 0
    return Usage(total / 1e9, throttled_ns / 1e9, used)
