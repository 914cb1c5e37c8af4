"""Per-call overhead of @eddie_otel.task against hand-written equivalents, in one interleaved run.

Overhead = time of a decorated call minus time of the bare call. Compared against:
  prometheus_client  the same four updates written by hand (active gauge inc/dec,
                     histogram observe, success counter, executed counter) with
                     `.labels(...)` per call, the style of the system eddie-otel replaces;
  prometheus_client, bound   the same with label children bound once at decoration;
  naive OpenTelemetry        one SDK instrument call per update.
Each variant runs in turn, REPEATS times, and the median is reported.
"""

from __future__ import annotations

import functools
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import eddie_otel
from eddie_otel.catalogue import DURATION_BUCKETS

CALLS = 20_000
REPEATS = 9


def bare() -> int:
    """The trivial function every variant wraps."""
    return 1


def prometheus_decorator(bind_once: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    registry = CollectorRegistry()
    active = Gauge("agent_active_tasks", "", ["agent"], registry=registry)
    duration = Histogram("task_execution_seconds", "", ["stage"], registry=registry, buckets=DURATION_BUCKETS)
    success = Counter("task_success_total", "", ["stage"], registry=registry)
    executed = Counter("agent_tasks_executed_total", "", ["agent"], registry=registry)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if bind_once:
            a, d, s, e = active.labels("a"), duration.labels("s"), success.labels("s"), executed.labels("a")

            @functools.wraps(fn)
            def bound(*args: Any, **kwargs: Any) -> Any:
                a.inc()
                start = time.perf_counter()
                try:
                    result = fn(*args, **kwargs)
                finally:
                    d.observe(time.perf_counter() - start)
                    e.inc()
                    a.dec()
                s.inc()
                return result

            return bound

        @functools.wraps(fn)
        def per_call(*args: Any, **kwargs: Any) -> Any:
            active.labels("a").inc()
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                duration.labels("s").observe(time.perf_counter() - start)
                executed.labels("a").inc()
                active.labels("a").dec()
            success.labels("s").inc()
            return result

        return per_call

    return decorate


def naive_otel_decorator() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    meter = provider.get_meter("naive")
    active = meter.create_up_down_counter("agent.active_tasks")
    duration = meter.create_histogram(
        "task.execution", unit="s", explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)
    )
    success = meter.create_counter("task.success")
    executed = meter.create_counter("agent.tasks_executed")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            active.add(1, {"agent": "a"})
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                duration.record(time.perf_counter() - start, {"stage": "s"})
                executed.add(1, {"agent": "a"})
                active.add(-1, {"agent": "a"})
            success.add(1, {"stage": "s"})
            return result

        return wrapper

    return decorate


def measure(variants: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Median nanoseconds per call of each variant, run interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        timeit.timeit(fn, number=CALLS // 10)
    for _ in range(REPEATS):
        for name, fn in variants.items():
            samples[name].append(timeit.timeit(fn, number=CALLS) / CALLS * 1e9)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    """Print the overhead of each variant and the ratios the project tracks."""
    eddie_otel.configure(serve=False)
    variants = {
        "bare call": bare,
        "eddie_otel.task": eddie_otel.task(stage="s", agent="a")(bare),
        "prometheus_client": prometheus_decorator(bind_once=False)(bare),
        "prometheus_client, bound": prometheus_decorator(bind_once=True)(bare),
        "naive OpenTelemetry": naive_otel_decorator()(bare),
    }
    medians = measure(variants)
    base = medians["bare call"]
    overhead = {name: value - base for name, value in medians.items()}
    print(f"{CALLS} calls x {REPEATS} interleaved repetitions, medians")
    print(f"{'variant':28} {'ns/call':>9} {'overhead ns':>12}")
    for name, value in medians.items():
        print(f"{name:28} {value:9.0f} {overhead[name]:12.0f}")
    ours = overhead["eddie_otel.task"]
    print(f"overhead ratio eddie_otel / prometheus_client        = {ours / overhead['prometheus_client']:.2f}")
    print(f"overhead ratio eddie_otel / prometheus_client, bound = {ours / overhead['prometheus_client, bound']:.2f}")
    print(f"overhead ratio eddie_otel / naive OpenTelemetry      = {ours / overhead['naive OpenTelemetry']:.2f}")
    eddie_otel.shutdown()


if __name__ == "__main__":
    main()
