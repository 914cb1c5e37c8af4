"""The module-level decorators and record calls: each delegates to the configured runtime's Recorder."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from eddie_otel import summary as _summary
from eddie_otel import timeouts as _timeouts
from eddie_otel.recording import Carrier, Depth, Label, decorator
from eddie_otel.recording.decorators import QueuedSince
from eddie_otel.runtime import Runtime, current, current_recorder

if TYPE_CHECKING:
    from eddie_otel.docker.watcher import DockerWatcher

__all__ = [
    "chunk",
    "forget_agent",
    "forget_container",
    "recommended_timeout",
    "record_chunk",
    "record_docker_allocation",
    "record_elastic_adjustment",
    "record_merge",
    "record_split",
    "record_task",
    "record_timeout",
    "record_usage",
    "set_agent_capacity",
    "set_timeout",
    "summary",
    "task",
    "watch_docker",
]

F = TypeVar("F", bound=Callable[..., Any])


def task(stage: Label = "default", agent: Label | None = None, *, carrier: Carrier | None = None) -> Callable[[F], F]:
    """Record a task: duration, success or failure, timeouts and, with `agent`, agent load.

    Labels are strings or callables receiving the call's arguments (`self` included
    for methods) and returning a string. Works on functions, coroutines, generators
    and async generators. Records into the runtime configured at the time of each call.
    With tracing on, each call is an `invoke_agent` span; `carrier`, a callable
    receiving the call's arguments, returns the W3C headers of its parent span
    (what `eddie_otel.carrier()` gave the process that sent the work).
    """
    return decorator(True, stage, agent, current_recorder, carrier=carrier)


def chunk(
    agent: Label,
    stage: Label = "chunk",
    *,
    depth: Depth | None = None,
    carrier: Carrier | None = None,
    queued_since: QueuedSince | None = None,
) -> Callable[[F], F]:
    """Record a chunk run on `agent`: duration, agent load and, when it times out, a timeout event.

    `depth` (an integer, or a callable receiving the call's arguments) is the chunk's fallback
    depth, an attribute of its span; `carrier` is as for `task`. `queued_since` (a Unix time, or a
    callable receiving the call's arguments that returns one) is when the chunk was queued: its
    queue wait. A chunk run through `propagate`, or given a `carrier()` taken after its split,
    measures it from the split without it.
    """
    return decorator(False, stage, agent, current_recorder, depth=depth, carrier=carrier, queued_since=queued_since)


def record_split(agent: str, chunks: int, depth: int) -> bool:
    """Record that a task or chunk at fallback `depth` was split into `chunks` chunks.

    Returns False, and counts fallback_depth_exceeded_total instead, when `depth` is
    beyond the maximum fallback depth (EDDIE_OTEL_MAX_FALLBACK_DEPTH, default 3): the
    caller should not split.
    """
    return current_recorder().record_split(agent, chunks, depth)


def record_timeout(agent: str, stage: str, reason: str = "timeout") -> None:
    """Record that a task or chunk of `stage` on `agent` timed out."""
    current_recorder().record_timeout(agent, stage, reason)


def record_merge(chunks_combined: int, duplicates_removed: int) -> None:
    """Record a merge of `chunks_combined` chunk results that removed `duplicates_removed` duplicates."""
    current_recorder().record_merge(chunks_combined, duplicates_removed)


def record_docker_allocation(
    container: str, cpu_millicores: int, memory_bytes: int, adjustment: str = "initial"
) -> None:
    """Record the CPU (millicores) and memory (bytes) limits just set on `container` (and its adjustment)."""
    current_recorder().record_docker_allocation(container, cpu_millicores, memory_bytes, adjustment)


def record_elastic_adjustment(container: str, type: str) -> None:
    """Record an elastic adjustment of `container`'s limits: cpu_up, cpu_down, memory_up or memory_down."""
    current_recorder().record_elastic_adjustment(container, type)


def record_task(
    stage: str,
    duration_seconds: float,
    success: bool = True,
    reason: str | None = None,
    agent: str | None = None,
    split: bool = False,
) -> None:
    """Record a finished task measured elsewhere: what @task records for one call (`split`: it was split)."""
    current_recorder().record_task(stage, duration_seconds, success, reason, agent, split)


def record_chunk(
    agent: str,
    duration_seconds: float,
    success: bool = True,
    reason: str | None = None,
    queued_seconds: float | None = None,
) -> None:
    """Record a finished chunk measured elsewhere: what @chunk records for one call (and its queue wait)."""
    current_recorder().record_chunk(agent, duration_seconds, success, reason, queued_seconds)


def set_agent_capacity(agent: str, slots: int) -> None:
    """Record that `agent` can run `slots` tasks and chunks at once (an integer ≥ 1; set it again when it changes)."""
    current_recorder().set_agent_capacity(agent, slots)


def record_usage(agent: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float | None = None) -> None:
    """Record model usage by `agent`: tokens of `model` and its cost in US dollars.

    Without `cost_usd`, the cost comes from the price table of EDDIE_OTEL_PRICES_FILE; a model it
    does not price records tokens only.
    """
    current_recorder().record_usage(agent, model, input_tokens, output_tokens, cost_usd)


def forget_agent(name: str) -> None:
    """Drop every series of agent `name` from the exposition and free its slot under the agent cap."""
    current_recorder().forget_agent(name)


def forget_container(name: str) -> None:
    """Drop every series of container `name` from the exposition and free its slot under the container cap."""
    current_recorder().forget_container(name)


def watch_docker(
    docker_host: str | None = None, label: str = "eddie.agent", *, interval: float = 5.0, workers: int = 32
) -> DockerWatcher:
    """Watch the Docker Engine at `docker_host` (None: DOCKER_HOST, else the local socket) in background threads.

    Every container carrying `label` (KEY or KEY=VALUE) is recorded with `container` = its name:
    CPU and memory limits and their elastic adjustments, CPU, throttling and memory usage (read every
    `interval` seconds, at most `workers` calls at once), OOM kills. Returns the watcher; `stop()` ends it.
    Needs the `docker` extra.
    """
    from eddie_otel.docker import watch_docker as start

    return start(docker_host, label, interval=interval, workers=workers)


def set_timeout(stage: str, seconds: float) -> None:
    """Record that tasks of `stage` run with a timeout of `seconds` (task_timeout_seconds); eddie never enforces it."""
    _timeouts.set_timeout(current_recorder(), stage, seconds)


def recommended_timeout(stage: str, *, default: float | None = None) -> float | None:
    """This process's recommended timeout for `stage`, in seconds; `default` while there is none.

    It exists once EDDIE_OTEL_TIMEOUT_MIN_SAMPLES (50) tasks of the stage succeeded: the nearest-rank
    p99 of the last 1 000 successful durations times EDDIE_OTEL_TIMEOUT_MARGIN (1.5), never below the
    slowest of them, within [EDDIE_OTEL_TIMEOUT_MIN_SECONDS, EDDIE_OTEL_TIMEOUT_MAX_SECONDS] (1, 86 400).
    """
    runtime = current()
    return _timeouts.recommended(runtime.history, runtime.timeout_policy, stage, default)


def summary(runtime: Runtime | None = None) -> _summary.Summary:
    """The summary of `runtime` (default: the configured one): the same dict as GET /metrics/summary."""
    return _summary.summary(runtime if runtime is not None else current())
