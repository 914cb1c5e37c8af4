"""Per-call overhead of @eddie_otel.task against hand-written equivalents, in one interleaved run.

Overhead = time of a decorated call minus time of the bare call, for a sync function
and for a coroutine function (awaited in a running event loop). eddie-otel runs twice,
interleaved: with its Prometheus endpoint alone (exporters="prometheus", what an agent
process runs by default), and with an OTLP reader too (exporters="prometheus,otlp"; the
endpoint is a loopback sink answering 200, export interval one hour, so the periodic export
stays out of the timings; the final flush at close shows that the exporter reached it).
Compared against:
  eddie_otel.task, callable    the same decorator (endpoint alone) with a callable `agent` label;
  eddie_otel.task, +OTLP       the same decorator with the OTLP reader too: the duration also goes
                               into an SDK histogram, the floor of any OpenTelemetry reader;
  prometheus_client, .labels() the same four updates written by hand (active gauge inc/dec,
                               histogram observe, success counter, executed counter) with
                               `.labels(...)` per call, the style of the system eddie-otel replaces;
  prometheus_client, bound     the same with label children bound once at decoration;
  naive OpenTelemetry          one SDK instrument call per update.
Each variant runs in turn, REPEATS times, and the median is reported. A second table
runs the static-label decorator against a provider with 1, 2 and 4 metric readers
(eddie's Prometheus reader plus in-memory readers), interleaved the same way.
A third table measures traces: the decorator without tracing (must cost what it did
before traces existed), with tracing on (an SDK TracerProvider, always sampled, a span
processor exporting to a no-op exporter), and a hand-written `tracer.start_as_current_span`
around the same function on the same provider, the cost a user pays for a span anyway.
A fourth times `record_task` pairs, two successes against a success then a failure: what a
failure (which takes the store's lock) costs beside a success (which does not).
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import eddie_otel
from benchmarks._common import OtlpSink, print_command
from eddie_otel.catalogue import DURATION_BUCKETS
from eddie_otel.config import Settings
from eddie_otel.runtime import Runtime
from eddie_otel.telemetry import Telemetry
from eddie_otel.tracing import Tracing

CALLS = 20_000
REPEATS = 9
READER_COUNTS = (1, 2, 4)
EXPORT_INTERVAL_MILLIS = 3_600_000

BARE = "bare call"
EDDIE = "eddie_otel.task"
EDDIE_CALLABLE = "eddie_otel.task, callable"
EDDIE_OTLP = "eddie_otel.task, +OTLP"
PROM = "prometheus_client, .labels()"
PROM_BOUND = "prometheus_client, bound"
NAIVE = "naive OpenTelemetry"

# (numerator, denominator, target ratio of overheads, ≤)
TARGETS = (
    (EDDIE, PROM_BOUND, 0.5),
    (EDDIE, PROM, 0.2),
    (EDDIE_CALLABLE, PROM_BOUND, 0.8),
    (EDDIE_OTLP, PROM, 1.5),
)


def bare() -> int:
    """The trivial function every sync variant wraps."""
    return 1


async def abare() -> int:
    """The trivial coroutine function every async variant wraps."""
    return 1


def _prometheus_metrics() -> tuple[Gauge, Histogram, Counter, Counter]:
    registry = CollectorRegistry()
    return (
        Gauge("agent_active_tasks", "", ["agent"], registry=registry),
        Histogram("task_execution_seconds", "", ["stage"], registry=registry, buckets=DURATION_BUCKETS),
        Counter("task_success_total", "", ["stage"], registry=registry),
        Counter("agent_tasks_executed_total", "", ["agent"], registry=registry),
    )


def prometheus_decorator(bind_once: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    active, duration, success, executed = _prometheus_metrics()

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


def prometheus_async_decorator(bind_once: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    active, duration, success, executed = _prometheus_metrics()

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if bind_once:
            a, d, s, e = active.labels("a"), duration.labels("s"), success.labels("s"), executed.labels("a")

            @functools.wraps(fn)
            async def bound(*args: Any, **kwargs: Any) -> Any:
                a.inc()
                start = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                finally:
                    d.observe(time.perf_counter() - start)
                    e.inc()
                    a.dec()
                s.inc()
                return result

            return bound

        @functools.wraps(fn)
        async def per_call(*args: Any, **kwargs: Any) -> Any:
            active.labels("a").inc()
            start = time.perf_counter()
            try:
                result = await fn(*args, **kwargs)
            finally:
                duration.labels("s").observe(time.perf_counter() - start)
                executed.labels("a").inc()
                active.labels("a").dec()
            success.labels("s").inc()
            return result

        return per_call

    return decorate


def naive_otel_decorator(is_async: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            active.add(1, {"agent": "a"})
            start = time.perf_counter()
            try:
                result = await fn(*args, **kwargs)
            finally:
                duration.record(time.perf_counter() - start, {"stage": "s"})
                executed.add(1, {"agent": "a"})
                active.add(-1, {"agent": "a"})
            success.add(1, {"stage": "s"})
            return result

        return async_wrapper if is_async else wrapper

    return decorate


def _time_sync(fn: Callable[[], Any], calls: int) -> float:
    """Nanoseconds per call of `fn`."""
    return timeit.timeit(fn, number=calls) / calls * 1e9


async def _await_loop(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return time.perf_counter() - started


def _time_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    """Nanoseconds per awaited call of the coroutine function `fn`, inside the running `loop`."""
    return loop.run_until_complete(_await_loop(fn, calls)) / calls * 1e9


def _interleaved(variants: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Median nanoseconds per call of each sync variant, after a warm-up, REPEATS rounds interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        _time_sync(fn, CALLS // 10)
    for _ in range(REPEATS):
        for name, fn in variants.items():
            samples[name].append(_time_sync(fn, CALLS))
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(
    sync_variants: dict[str, Callable[[], Any]], async_variants: dict[str, Callable[[], Awaitable[Any]]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Median nanoseconds per call of each variant, sync and async interleaved in one run."""
    loop = asyncio.new_event_loop()
    try:
        sync_samples: dict[str, list[float]] = {name: [] for name in sync_variants}
        async_samples: dict[str, list[float]] = {name: [] for name in async_variants}
        for fn in sync_variants.values():  # warm-up
            _time_sync(fn, CALLS // 10)
        for afn in async_variants.values():
            _time_async(loop, afn, CALLS // 10)
        for _ in range(REPEATS):
            for name, fn in sync_variants.items():
                sync_samples[name].append(_time_sync(fn, CALLS))
            for name, afn in async_variants.items():
                async_samples[name].append(_time_async(loop, afn, CALLS))
    finally:
        loop.close()
    return (
        {name: statistics.median(values) for name, values in sync_samples.items()},
        {name: statistics.median(values) for name, values in async_samples.items()},
    )


def _print_table(title: str, medians: dict[str, float]) -> dict[str, float]:
    base = medians[BARE]
    overhead = {name: value - base for name, value in medians.items()}
    print(title)
    print(f"  {'variant':30} {'ns/call':>9} {'overhead ns':>12}")
    for name, value in medians.items():
        print(f"  {name:30} {value:9.0f} {overhead[name]:12.0f}")
    return overhead


def _print_ratios(kind: str, overhead: dict[str, float]) -> None:
    for numerator, denominator, target in TARGETS:
        ratio = overhead[numerator] / overhead[denominator]
        verdict = "met" if ratio <= target else "MISSED"
        label = f"{numerator} / {denominator}"
        print(f"  {kind:5} {label:60} = {ratio:5.2f}  (target ≤ {target}: {verdict})")
    print(f"  {kind:5} {EDDIE + ' / ' + NAIVE:60} = {overhead[EDDIE] / overhead[NAIVE]:5.2f}  (no target)")


def measure_readers() -> dict[int, float]:
    """Median overhead (ns/call) of the static-label decorator on a borrowed provider with 1, 2 and 4 readers.

    Each reader of the provider aggregates the duration in the SDK: the cost grows with the readers.
    """
    decorated = eddie_otel.task(stage="s", agent="a")(bare)
    samples: dict[int, list[float]] = {count: [] for count in READER_COUNTS}
    bare_samples: list[float] = []
    for repeat in range(REPEATS + 1):  # the first round is a warm-up
        for count in READER_COUNTS:
            eddie_otel.reset()
            provider = MeterProvider(metric_readers=[InMemoryMetricReader() for _ in range(count)])
            eddie_otel.configure(serve=False, exporters="prometheus", meter_provider=provider)
            try:
                _time_sync(decorated, CALLS // 10)  # the series exist before timing
                bare_ns = _time_sync(bare, CALLS)
                ours_ns = _time_sync(decorated, CALLS)
                if repeat:
                    bare_samples.append(bare_ns)
                    samples[count].append(ours_ns)
            finally:
                eddie_otel.reset()
                provider.shutdown()
    base = statistics.median(bare_samples)
    return {count: statistics.median(values) - base for count, values in samples.items()}


class _NullSpanExporter(SpanExporter):
    """Takes every span and sends it nowhere: the cost measured is making the span, not shipping it."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


TRACING_OFF = "eddie_otel.task, tracing off"
TRACING_ON = "eddie_otel.task, tracing on"
HAND_SPAN = "start_as_current_span by hand"


def measure_tracing() -> dict[str, float]:
    """Median overhead (ns/call) of the decorator without and with tracing, and of a hand-written span."""
    settings = Settings.load(serve=False, exporters="prometheus")
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(_NullSpanExporter()))
    untraced = Runtime(settings, Telemetry(settings))
    traced = Runtime(settings, Telemetry(settings), tracing=Tracing(provider.get_tracer("eddie_otel")))
    tracer = provider.get_tracer("hand-written")
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a", "eddie.stage": "s"}

    def by_hand() -> int:
        with tracer.start_as_current_span("invoke_agent a", attributes=attributes):
            return bare()

    variants: dict[str, Callable[[], Any]] = {
        BARE: bare,
        TRACING_OFF: untraced.recorder.task(stage="s", agent="a")(bare),
        TRACING_ON: traced.recorder.task(stage="s", agent="a")(bare),
        HAND_SPAN: by_hand,
    }
    try:
        medians = _interleaved(variants)
    finally:
        untraced.close()
        traced.close()
        provider.shutdown()
    return {name: value - medians[BARE] for name, value in medians.items() if name != BARE}


SUCCESSES = "success, success"
MIXED = "success, failure"


def measure_outcomes() -> dict[str, float]:
    """Median ns per pair of `Recorder.record_task` calls: two successes, and a success then a failure.

    A plain success is counted without the store's lock (it joins its site's tally); a failure takes
    the lock. The second pair shows what a failure costs beside a success, pending successes included.
    """
    settings = Settings.load(serve=False, exporters="prometheus")
    built = Runtime(settings, Telemetry(settings))
    recorder = built.recorder

    def successes() -> None:
        recorder.record_task("s", 0.5, True, None, "a", False)
        recorder.record_task("s", 0.7, True, None, "a", False)

    def mixed() -> None:
        recorder.record_task("s", 0.5, True, None, "a", False)
        recorder.record_task("s", 0.7, False, "ValueError", "a", False)

    try:
        return _interleaved({SUCCESSES: successes, MIXED: mixed})
    finally:
        built.close()


def main() -> None:
    """Print the overhead of each variant, the ratios the project tracks, and the readers table."""
    print_command("bench_decorator")
    sink = OtlpSink()
    variables = ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    saved = {name: os.environ.get(name) for name in variables}
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    os.environ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = f"{sink.endpoint}/v1/metrics"
    alone_settings = Settings.load(serve=False, exporters="prometheus")
    otlp_settings = Settings.load(
        serve=False, exporters="prometheus,otlp", export_interval_millis=EXPORT_INTERVAL_MILLIS
    )
    alone = otlp = None
    try:
        eddie_otel.reset()
        alone = Runtime(alone_settings, Telemetry(alone_settings))
        otlp = Runtime(otlp_settings, Telemetry(otlp_settings))

        def agent(*args: Any, **kwargs: Any) -> str:
            return "python-agent"

        sync_variants = {
            BARE: bare,
            EDDIE: alone.recorder.task(stage="s", agent="python-agent")(bare),
            EDDIE_CALLABLE: alone.recorder.task(stage="s", agent=lambda *a, **k: "python-agent")(bare),
            EDDIE_OTLP: otlp.recorder.task(stage="s", agent="python-agent")(bare),
            PROM: prometheus_decorator(bind_once=False)(bare),
            PROM_BOUND: prometheus_decorator(bind_once=True)(bare),
            NAIVE: naive_otel_decorator()(bare),
        }
        async_variants = {
            BARE: abare,
            EDDIE: alone.recorder.task(stage="s", agent="python-agent")(abare),
            EDDIE_CALLABLE: alone.recorder.task(stage="s", agent=agent)(abare),
            EDDIE_OTLP: otlp.recorder.task(stage="s", agent="python-agent")(abare),
            PROM: prometheus_async_decorator(bind_once=False)(abare),
            PROM_BOUND: prometheus_async_decorator(bind_once=True)(abare),
            NAIVE: naive_otel_decorator(is_async=True)(abare),
        }
        sync_medians, async_medians = measure(sync_variants, async_variants)
        otlp.close()  # flushes the OTLP reader once into the sink
        otlp = None
        print(f"{CALLS} calls x {REPEATS} interleaved repetitions, medians")
        sync_overhead = _print_table("sync function:", sync_medians)
        async_overhead = _print_table("coroutine function (awaited in a running event loop):", async_medians)
        print("overhead ratios:")
        _print_ratios("sync", sync_overhead)
        _print_ratios("async", async_overhead)
        print(f"OTLP sink: {sink.posts} POST /v1/metrics received (the flush at shutdown)")
    finally:
        for built in (alone, otlp):
            if built is not None:
                built.close()
        eddie_otel.reset()
        sink.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    readers = measure_readers()
    print("readers: static-label eddie_otel.task (sync) on a borrowed provider with in-memory readers")
    print(f"  {'readers':>7} {'overhead ns':>12} {'vs 1 reader':>12}")
    for count, value in readers.items():
        print(f"  {count:7} {value:12.0f} {value / readers[READER_COUNTS[0]]:11.2f}x")

    tracing = measure_tracing()
    print("traces: sync function, exporters=prometheus, always sampled, spans to a no-op exporter")
    print(f"  {'variant':34} {'overhead ns':>12}")
    for name, value in tracing.items():
        print(f"  {name:34} {value:12.0f}")
    added = tracing[TRACING_ON] - tracing[TRACING_OFF]
    print(f"  added by tracing: {added:.0f} ns/call, {added / tracing[HAND_SPAN]:.2f}x a hand-written span")

    outcomes = measure_outcomes()
    print("outcomes: record_task twice (exporters=prometheus), interleaved")
    print(f"  {'pair':34} {'ns/pair':>12}")
    for name, value in outcomes.items():
        print(f"  {name:34} {value:12.0f}")
    print(f"  a failure costs {outcomes[MIXED] - outcomes[SUCCESSES]:.0f} ns more than a success")


if __name__ == "__main__":
    main()
