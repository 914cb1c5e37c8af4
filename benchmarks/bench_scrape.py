"""One scrape of 10 000 series: eddie-otel's exposition against prometheus_client's generate_latest.

Two cases, each with its own configuration:
  histogram  `eddie_otel.record_task(stage=f"s{i}", ...)` for 10 000 stages, one observation
             each, timed as `runtime.telemetry.exposition()`; the prometheus_client twin is a
             Histogram with the same buckets (DURATION_BUCKETS) and 10 000 children observed once.
             A successful record_task also counts task_success_total{stage}, so eddie's scrape
             holds 10 000 counter series more: the ratio is printed against the Histogram alone
             (the target) and against a twin with that success Counter as well.
  counter    `eddie_otel.record_timeout(agent="a", stage=f"s{i}", reason="deadline")`, against a
             prometheus_client Counter with the same three labels and 10 000 children.
Targets: histogram ≤ 1.0x, counter ≤ 1.2x the prometheus_client time. Scrapes of eddie and
of its twins are interleaved, REPEATS times, and the medians compared. Memory per series is
what tracemalloc sees allocated (and still held) while the series are created and recorded,
divided by the number of series recorded (10 000; for eddie that includes every family the
record call touches, and for the twins every family they hold).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

import eddie_otel
from benchmarks._common import print_command
from eddie_otel.catalogue import DURATION_BUCKETS

SERIES = 10_000
REPEATS = 7
HISTOGRAM_TARGET = 1.0
COUNTER_TARGET = 1.2
EDDIE = "eddie_otel exposition()"


def _traced(build: Callable[[], object]) -> tuple[object, int]:
    """What `build` returns, and the bytes it allocated that are still held afterwards."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return built, after - before


def _eddie_histograms() -> None:
    for i in range(SERIES):
        eddie_otel.record_task(stage=f"s{i}", duration_seconds=0.5)


def _eddie_counters() -> None:
    for i in range(SERIES):
        eddie_otel.record_timeout(agent="a", stage=f"s{i}", reason="deadline")


def _prom_histograms(with_success: bool) -> Callable[[], CollectorRegistry]:
    def build() -> CollectorRegistry:
        registry = CollectorRegistry()
        duration = Histogram("task_execution_seconds", "", ["stage"], registry=registry, buckets=DURATION_BUCKETS)
        success = Counter("task_success_total", "", ["stage"], registry=registry) if with_success else None
        for i in range(SERIES):
            duration.labels(f"s{i}").observe(0.5)
            if success is not None:
                success.labels(f"s{i}").inc()
        return registry

    return build


def _prom_counters() -> CollectorRegistry:
    registry = CollectorRegistry()
    timeouts = Counter("timeout_events_total", "", ["agent", "stage", "reason"], registry=registry)
    for i in range(SERIES):
        timeouts.labels("a", f"s{i}", "deadline").inc()
    return registry


def _time(scrape: Callable[[], bytes]) -> float:
    started = time.perf_counter()
    scrape()
    return time.perf_counter() - started


Twins = dict[str, Callable[[], CollectorRegistry]]


def _exposed(body: bytes, family: str) -> tuple[int, bool]:
    """How many series of `family` a text body holds (its _count lines for a histogram), and whether
    the SDK's otel_metric_overflow label shows anywhere."""
    suffix = b"_count{" if family.endswith("_seconds") else b"{"
    prefix = family.encode() + suffix
    count = sum(
        1 for line in body.splitlines() if line.startswith(prefix) and b'otel_metric_overflow="true"' not in line
    )
    return count, b"otel_metric_overflow" in body


def _case(title: str, family: str, record: Callable[[], None], twins: Twins) -> dict[str, float]:
    """Build eddie's series and the twins, time their scrapes interleaved, print, and return medians."""
    eddie_otel.reset()
    runtime = eddie_otel.configure(serve=False, max_label_values=SERIES, max_series_per_metric=SERIES)
    _, eddie_bytes = _traced(record)
    scrapers: dict[str, Callable[[], bytes]] = {EDDIE: lambda: runtime.telemetry.exposition()[0]}
    held: dict[str, int] = {EDDIE: eddie_bytes}
    for name, build in twins.items():
        registry, size = _traced(build)
        assert isinstance(registry, CollectorRegistry)
        scrapers[name] = lambda registry=registry: generate_latest(registry)
        held[name] = size
    bodies = {name: scrape() for name, scrape in scrapers.items()}  # also the warm-up
    samples: dict[str, list[float]] = {name: [] for name in scrapers}
    for _ in range(REPEATS):
        for name, scrape in scrapers.items():
            samples[name].append(_time(scrape))
    eddie_otel.reset()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{title}: {SERIES} series, {REPEATS} interleaved scrapes each, medians")
    print(f"  {'scrape':44} {'ms':>8} {'body KiB':>9} {'lines':>7} {'bytes/series':>13}")
    for name, median in medians.items():
        body = bodies[name]
        lines = body.count(b"\n")
        print(f"  {name:44} {median * 1e3:8.1f} {len(body) / 1024:9.0f} {lines:7} {held[name] / SERIES:13.0f}")
    exposed, overflow = _exposed(bodies[EDDIE], family)
    print(
        f"  eddie's scrape holds {exposed} of {SERIES} {family} series; "
        f"otel_metric_overflow label present: {'yes' if overflow else 'no'}"
    )
    if exposed < SERIES:
        print(f"  NOTE: eddie's scrape is missing {SERIES - exposed} series: its time is not comparable")
    medians["exposed"] = exposed
    return medians


def _verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "MISSED"


def main() -> None:
    """Time both cases and print the ratios against the targets."""
    print_command("bench_scrape")
    histogram_twin = "prometheus_client Histogram"
    histogram_success_twin = "prometheus_client Histogram + success Counter"
    histograms = _case(
        "histogram (record_task)",
        "task_execution_seconds",
        _eddie_histograms,
        {histogram_twin: _prom_histograms(False), histogram_success_twin: _prom_histograms(True)},
    )
    counter_twin = "prometheus_client Counter (3 labels)"
    counters = _case(
        "counter (record_timeout)", "timeout_events_total", _eddie_counters, {counter_twin: _prom_counters}
    )
    eddie = EDDIE
    ratio = histograms[eddie] / histograms[histogram_twin]
    print(
        f"histogram: eddie / {histogram_twin} = {ratio:.2f}x "
        f"(target ≤ {HISTOGRAM_TARGET}: {_verdict(ratio, HISTOGRAM_TARGET)})"
    )
    ratio = histograms[eddie] / histograms[histogram_success_twin]
    print(f"histogram: eddie / {histogram_success_twin} = {ratio:.2f}x (same series as eddie's scrape)")
    ratio = counters[eddie] / counters[counter_twin]
    verdict = _verdict(ratio, COUNTER_TARGET) if counters["exposed"] == SERIES else "not comparable, series missing"
    print(f"counter:   eddie / {counter_twin} = {ratio:.2f}x (target ≤ {COUNTER_TARGET}: {verdict})")


if __name__ == "__main__":
    main()
