"""The decorators @task and @chunk, and the record calls.

Everything here records into the configured runtime: the exact series and
histograms of the telemetry layer, and the history that feeds the summary.
A failure inside the instrumentation is logged and never reaches the caller;
invalid arguments to a record call are a ValueError naming the argument.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, cast

from eddie_otel import runtime as _rt
from eddie_otel.catalogue import ADJUSTMENT_TYPES
from eddie_otel.labels import LABEL_VALUE_RE, check_label_value
from eddie_otel.telemetry import Cell

__all__ = [
    "Label",
    "chunk",
    "record_chunk",
    "record_docker_allocation",
    "record_elastic_adjustment",
    "record_merge",
    "record_split",
    "record_task",
    "record_timeout",
    "task",
]

logger = logging.getLogger("eddie_otel")

F = TypeVar("F", bound=Callable[..., Any])
Label = str | Callable[..., str]

# A TimeoutError escaping a decorated call counts as a timeout; on Python 3.10 the
# asyncio and concurrent.futures ones are not yet aliases of the builtin.
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(
    {TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError}
)
UNKNOWN = "unknown"
_perf_counter = time.perf_counter


class _Site:
    """The prepared cells and attributes of one decorated function for one set of label values."""

    __slots__ = (
        "active",
        "agent",
        "executed",
        "failures",
        "histogram",
        "histogram_attributes",
        "history",
        "lock",
        "runtime",
        "sample",
        "stage",
        "success",
        "telemetry",
        "timeouts",
    )

    def __init__(self, runtime: _rt.Runtime, is_task: bool, stage: str, agent: str | None) -> None:
        telemetry = runtime.telemetry
        self.runtime = runtime
        self.telemetry = telemetry
        self.history = runtime.history
        self.lock = telemetry.lock
        self.stage = stage
        self.agent = agent
        series = telemetry.series
        self.active: Cell | None = None
        self.executed: Cell | None = None
        if agent is not None:
            self.active = series["agent_active_tasks"].cell((agent,))
            self.executed = series["agent_tasks_executed_total"].cell((agent,))
        self.success: Cell | None = series["task_success_total"].cell((stage,)) if is_task else None
        self.failures: dict[str, Cell] = {}
        self.timeouts: dict[str, Cell] = {}
        self.sample = runtime.history.sample(stage) if is_task else None
        if is_task:
            self.histogram = telemetry.histograms.get("task_execution_seconds")
            self.histogram_attributes = {"stage": stage}
        else:
            self.histogram = telemetry.histograms.get("chunk_execution_seconds")
            self.histogram_attributes = {"agent": agent or UNKNOWN}

    def _reason(self, error: BaseException) -> str:
        # A class name is an identifier, which may hold letters a label value may not.
        reason = type(error).__name__
        if LABEL_VALUE_RE.fullmatch(reason) is None:
            reason = UNKNOWN
        return self.telemetry.label_cap.bound("reason", reason)

    def failed(self, error: BaseException) -> None:
        reason = self._reason(error)
        cell = self.failures.get(reason)
        if cell is None:
            cell = self.failures[reason] = self.telemetry.series["task_failure_total"].cell((self.stage, reason))
        with self.lock:
            cell.value += 1

    def timed_out(self, error: BaseException) -> None:
        reason = self._reason(error)
        cell = self.timeouts.get(reason)
        if cell is None:
            cell = self.timeouts[reason] = self.telemetry.series["timeout_events_total"].cell(
                (self.agent or UNKNOWN, self.stage, reason)
            )
        with self.lock:
            cell.value += 1


class _Instrumentation:
    """The start/finish logic shared by every wrapper of one decorated function."""

    __slots__ = ("agent", "is_task", "name", "site", "sites", "stage", "static")

    def __init__(self, is_task: bool, stage: Label, agent: Label | None, name: str) -> None:
        self.is_task = is_task
        self.stage = stage
        self.agent = agent
        self.name = name
        self.static = not callable(stage) and not callable(agent)
        # With static labels, the one site, checked against the current runtime on each call.
        self.site: _Site | None = None
        self.sites: dict[tuple[str, str | None], _Site] = {}

    def _label(self, runtime: _rt.Runtime, name: str, label: Label, args: Any, kwargs: Any) -> str:
        try:
            value = label(*args, **kwargs) if callable(label) else label
            check_label_value(name, value)
        except Exception as error:
            logger.warning("eddie-otel: %s label of %s: %s; recorded as %r", name, self.name, error, UNKNOWN)
            return UNKNOWN
        return runtime.telemetry.label_cap.bound(name, value)

    def _resolve(self, args: Any, kwargs: Any) -> _Site | None:
        runtime = _rt._runtime or _rt.current()
        if not runtime.telemetry.enabled:
            return None
        stage = self._label(runtime, "stage", self.stage, args, kwargs)
        agent = None if self.agent is None else self._label(runtime, "agent", self.agent, args, kwargs)
        key = (stage, agent)
        site = self.sites.get(key)
        if site is None or site.runtime is not runtime:
            if len(self.sites) > 4096:
                self.sites.clear()
            site = self.sites[key] = _Site(runtime, self.is_task, stage, agent)
        if self.static:
            self.site = site
        return site

    def start(self, args: Any, kwargs: Any) -> tuple[_Site, float] | None:
        try:
            site = self.site
            if site is None or site.runtime is not _rt._runtime:
                site = self._resolve(args, kwargs)
                if site is None:
                    return None
            active = site.active
            if active is not None:
                with site.lock:
                    active.value += 1
            return site, _perf_counter()
        except Exception:
            logger.exception("eddie-otel: could not start recording %s", self.name)
            return None

    def finish(self, token: tuple[_Site, float] | None, error: BaseException | None) -> None:
        if token is None:
            return
        try:
            site, started = token
            now = _perf_counter()
            seconds = now - started
            history = site.history
            if now >= history.next_tick:
                history.tick(now)
            success = site.success
            with site.lock:
                if site.active is not None:
                    site.active.value -= 1
                    site.executed.value += 1  # type: ignore[union-attr]
                if error is None and success is not None:
                    success.value += 1
            if site.histogram is not None:
                site.histogram.record(seconds, site.histogram_attributes)
            if site.sample is not None:
                site.sample.append(seconds)
            if error is not None:
                if success is not None:
                    site.failed(error)
                if isinstance(error, TIMEOUT_ERRORS):
                    site.timed_out(error)
        except Exception:
            logger.exception("eddie-otel: could not finish recording %s", self.name)


class _Recording:
    """One call being recorded: started on creation, finished on exit.

    The generator wrappers run inside one of these; the plain wrappers inline the same
    start/finish. An early close of a generator (GeneratorExit) ends it as a success.
    """

    __slots__ = ("instrumentation", "token")

    def __init__(self, instrumentation: _Instrumentation, args: Any, kwargs: Any) -> None:
        self.instrumentation = instrumentation
        self.token = instrumentation.start(args, kwargs)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if error is not None and isinstance(error, GeneratorExit):
            error = None
        self.instrumentation.finish(self.token, error)


def _wrap(instrumentation: _Instrumentation, fn: F) -> F:
    start, finish = instrumentation.start, instrumentation.finish

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            with _Recording(instrumentation, args, kwargs):
                inner = fn(*args, **kwargs)
                # Delegate as `yield from` would: values sent and exceptions thrown reach `inner`.
                step: Callable[[Any], Any] = inner.asend
                argument: Any = None
                while True:
                    try:
                        item = await step(argument)
                    except StopAsyncIteration:
                        return
                    try:
                        argument = yield item
                        step = inner.asend
                    except GeneratorExit:
                        await inner.aclose()
                        raise
                    except BaseException as thrown:
                        step, argument = inner.athrow, thrown

        return cast(F, async_gen_wrapper)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            with _Recording(instrumentation, args, kwargs):
                return (yield from fn(*args, **kwargs))

        return cast(F, gen_wrapper)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            token = start(args, kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as error:
                finish(token, error)
                raise
            finish(token, None)
            return result

        return cast(F, async_wrapper)

    # The plain call is the hot path: the same start/finish as _Recording, without
    # the cost of a context manager object (a tenth of the overhead, `make bench`).
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = start(args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            finish(token, error)
            raise
        finish(token, None)
        return result

    return cast(F, wrapper)


def task(stage: Label = "default", agent: Label | None = None) -> Callable[[F], F]:
    """Record a task: duration, success or failure, timeouts and, with `agent`, agent load.

    Labels are strings or callables receiving the call's arguments (`self` included
    for methods) and returning a string. Works on functions, coroutines, generators
    and async generators.
    """
    _check_static(stage, agent)

    def decorate(fn: F) -> F:
        return _wrap(_Instrumentation(True, stage, agent, _qualname(fn)), fn)

    return decorate


def chunk(agent: Label, stage: Label = "chunk") -> Callable[[F], F]:
    """Record a chunk run on `agent`: duration, agent load and, when it times out, a timeout event."""
    _check_static(stage, agent)

    def decorate(fn: F) -> F:
        return _wrap(_Instrumentation(False, stage, agent, _qualname(fn)), fn)

    return decorate


def _check_static(stage: Label, agent: Label | None) -> None:
    for argument, value in (("stage", stage), ("agent", agent)):
        if value is not None and not callable(value):
            check_label_value(argument, value)


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# ---------------------------------------------------------------- record calls


def _count(argument: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{argument} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{argument} must be at least {minimum}, not {value}")
    return value


def _seconds(argument: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{argument} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{argument} must be a finite number of seconds ≥ 0, not {value}")
    return float(value)


def _labels(runtime: _rt.Runtime, **values: object) -> tuple[str, ...]:
    checked = [(name, check_label_value(name, value)) for name, value in values.items()]
    bound = runtime.telemetry.label_cap.bound
    return tuple(bound(name, value) for name, value in checked)


def _runtime() -> _rt.Runtime:
    """The runtime, its history's snapshot taken if due: call before counting anything."""
    runtime = _rt._runtime or _rt.current()
    history = runtime.history
    now = history.clock()
    if now >= history.next_tick:
        history.tick(now)
    return runtime


def record_split(agent: str, chunks: int, depth: int) -> bool:
    """Record that a task or chunk at fallback `depth` was split into `chunks` chunks.

    Returns False, and counts fallback_depth_exceeded_total instead, when `depth` is
    beyond the maximum fallback depth (EDDIE_OTEL_MAX_FALLBACK_DEPTH, default 3): the
    caller should not split.
    """
    check_label_value("agent", agent)
    _count("chunks", chunks, 1)
    _count("depth", depth, 0)
    runtime = _runtime()
    allowed = depth <= runtime.settings.max_fallback_depth
    if not runtime.telemetry.enabled:
        return allowed
    (agent,) = _labels(runtime, agent=agent)
    series = runtime.telemetry.series
    if not allowed:
        series["fallback_depth_exceeded_total"].add((agent,), 1)
        return False
    split, created = (
        series["task_split_total"].cell((agent,)),
        series["task_split_chunks_total"].cell((agent,)),
    )
    with runtime.telemetry.lock:
        split.value += 1
        created.value += chunks
    return True


def record_timeout(agent: str, stage: str, reason: str = "timeout") -> None:
    """Record that a task or chunk of `stage` on `agent` timed out."""
    runtime = _runtime()
    key = _labels(runtime, agent=agent, stage=stage, reason=reason)
    if runtime.telemetry.enabled:
        runtime.telemetry.series["timeout_events_total"].add(key, 1)


def record_merge(chunks_combined: int, duplicates_removed: int) -> None:
    """Record a merge of `chunks_combined` chunk results that removed `duplicates_removed` duplicates."""
    _count("chunks_combined", chunks_combined)
    _count("duplicates_removed", duplicates_removed)
    if duplicates_removed > chunks_combined:
        raise ValueError(f"duplicates_removed ({duplicates_removed}) cannot exceed chunks_combined ({chunks_combined})")
    runtime = _runtime()
    if not runtime.telemetry.enabled:
        return
    series = runtime.telemetry.series
    combined, removed = (
        series["merge_chunks_combined_total"].cell(()),
        series["merge_deduplication_total"].cell(()),
    )
    with runtime.telemetry.lock:
        combined.value += chunks_combined
        removed.value += duplicates_removed


def record_docker_allocation(
    container: str, cpu_millicores: int, memory_bytes: int, adjustment: str = "initial"
) -> None:
    """Record the CPU (millicores) and memory (bytes) limits just set on `container`.

    `adjustment` is "initial" for a first allocation, or the elastic adjustment
    (cpu_up, cpu_down, memory_up, memory_down) that led to these limits, which is
    then counted too.
    """
    check_label_value("container", container)
    _count("cpu_millicores", cpu_millicores, 1)
    _count("memory_bytes", memory_bytes, 1)
    if adjustment != "initial" and adjustment not in ADJUSTMENT_TYPES:
        raise ValueError(f"adjustment must be one of initial, {', '.join(ADJUSTMENT_TYPES)}; not {adjustment!r}")
    runtime = _runtime()
    key = _labels(runtime, container=container)
    if not runtime.telemetry.enabled:
        return
    series = runtime.telemetry.series
    series["docker_container_cpu_limit"].set(key, cpu_millicores)
    series["docker_container_memory_limit_bytes"].set(key, memory_bytes)
    if adjustment != "initial":
        series["docker_elastic_adjustment_total"].add((*key, adjustment), 1)


def record_elastic_adjustment(container: str, type: str) -> None:
    """Record an elastic adjustment of `container`'s limits: cpu_up, cpu_down, memory_up or memory_down."""
    check_label_value("container", container)
    if type not in ADJUSTMENT_TYPES:
        raise ValueError(f"type must be one of {', '.join(ADJUSTMENT_TYPES)}; not {type!r}")
    runtime = _runtime()
    key = _labels(runtime, container=container)
    if runtime.telemetry.enabled:
        runtime.telemetry.series["docker_elastic_adjustment_total"].add((*key, type), 1)


def record_task(
    stage: str,
    duration_seconds: float,
    success: bool = True,
    reason: str | None = None,
    agent: str | None = None,
) -> None:
    """Record a finished task measured elsewhere: what @task records for one call.

    A failure's `reason` defaults to "error"; a reason of "timeout" or "TimeoutError"
    also counts a timeout event.
    """
    labels: dict[str, object] = {"stage": stage}
    if not success:
        labels["reason"] = "error" if reason is None else reason
    if agent is not None:
        labels["agent"] = agent
    for name, value in labels.items():
        check_label_value(name, value)
    seconds = _seconds("duration_seconds", duration_seconds)
    if not isinstance(success, bool):
        raise ValueError(f"success must be true or false, not {type(success).__name__}")
    runtime = _runtime()
    if not runtime.telemetry.enabled:
        return
    values = dict(zip(labels, _labels(runtime, **labels), strict=True))
    telemetry = runtime.telemetry
    series = telemetry.series
    stage = values["stage"]
    cells = []
    if success:
        cells.append(series["task_success_total"].cell((stage,)))
    else:
        cells.append(series["task_failure_total"].cell((stage, values["reason"])))
        if values["reason"] in ("timeout", "TimeoutError"):
            cells.append(series["timeout_events_total"].cell((values.get("agent", UNKNOWN), stage, values["reason"])))
    if agent is not None:
        cells.append(series["agent_tasks_executed_total"].cell((values["agent"],)))
    # Cells are created before taking the lock: creating one takes it too.
    with telemetry.lock:
        for cell in cells:
            cell.value += 1
    histogram = telemetry.histograms.get("task_execution_seconds")
    if histogram is not None:
        histogram.record(seconds, {"stage": stage})
    runtime.history.sample(stage).append(seconds)


def record_chunk(agent: str, duration_seconds: float, success: bool = True) -> None:
    """Record a finished chunk measured elsewhere: what @chunk records for one call."""
    check_label_value("agent", agent)
    seconds = _seconds("duration_seconds", duration_seconds)
    if not isinstance(success, bool):
        raise ValueError(f"success must be true or false, not {type(success).__name__}")
    runtime = _runtime()
    if not runtime.telemetry.enabled:
        return
    (agent,) = _labels(runtime, agent=agent)
    runtime.telemetry.series["agent_tasks_executed_total"].add((agent,), 1)
    histogram = runtime.telemetry.histograms.get("chunk_execution_seconds")
    if histogram is not None:
        histogram.record(seconds, {"agent": agent})
