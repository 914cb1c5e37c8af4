"""Every reader: readers of a borrowed SDK MeterProvider, present before configure() and added
after, see eddie's histograms exactly through its instruments; eddie's own endpoint never shows
the SDK's overflow series; the declared SDK range is the tested one."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import eddie_otel
from eddie_otel import runtime
from eddie_otel.catalogue import DURATION_BUCKETS, by_prometheus_name
from tests.support.boundaries import boundary_values, per_bucket, prometheus_histogram, sdk_histogram_points
from tests.support.helpers import families

ROOT = Path(__file__).resolve().parents[2]
TASK = by_prometheus_name("task_execution_seconds")
CHUNK = by_prometheus_name("chunk_execution_seconds")


@pytest.fixture
def borrowed() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    before = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[before])
    yield provider, before
    eddie_otel.reset()
    provider.shutdown()


def record(values: list[float]) -> None:
    for value in values:
        eddie_otel.record_task(stage="exact", duration_seconds=value)
        eddie_otel.record_chunk(agent="exact-agent", duration_seconds=value)


def assert_reader_exact(reader: InMemoryMetricReader, values: list[float]) -> None:
    data = reader.get_metrics_data()
    assert data is not None
    for metric, labels in ((TASK, {"stage": "exact"}), (CHUNK, {"agent": "exact-agent"})):
        (point,) = sdk_histogram_points(data, metric.otel_name, **labels)
        assert list(point.explicit_bounds) == list(DURATION_BUCKETS)
        assert list(point.bucket_counts) == per_bucket(values), metric.otel_name
        assert point.count == len(values)


def test_readers_of_a_borrowed_provider_before_and_after_configure_see_the_histograms(
    borrowed: tuple[MeterProvider, InMemoryMetricReader], caplog: pytest.LogCaptureFixture
) -> None:
    provider, before = borrowed
    caplog.set_level(logging.WARNING)
    eddie_otel.configure(serve=False, meter_provider=provider)
    assert runtime.current().telemetry.borrowed is provider
    assert caplog.records == []
    values = boundary_values()
    record(values)
    assert_reader_exact(before, values)
    if hasattr(provider, "add_metric_reader"):
        # SDK 1.43 and later: a reader added after configure() gets what is recorded from then on.
        after = InMemoryMetricReader()
        provider.add_metric_reader(after)
        record(values)
        assert_reader_exact(after, values)
        assert_reader_exact(before, values + values)
        values = values + values
    text = runtime.current().telemetry.exposition()[0].decode()
    _, counts, count, _ = prometheus_histogram(text, TASK.prometheus_name, stage="exact")
    assert (counts, count) == (per_bucket(values), len(values))


def test_a_provider_installed_globally_is_borrowed_and_its_readers_see_the_histograms() -> None:
    # The global provider can be set once per process: a fresh interpreter.
    script = textwrap.dedent(
        """
        import json, logging
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        import eddie_otel
        from eddie_otel import runtime

        logging.basicConfig(level=logging.WARNING)
        before = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[before])
        metrics.set_meter_provider(provider)
        eddie_otel.configure(serve=False)
        for value in (0.0, 0.01, 0.0100001, 60.0, 60.000001, 5000.0):
            eddie_otel.record_task(stage="exact", duration_seconds=value)
        seen = {}
        for name, reader in (("before", before),):
            for rm in reader.get_metrics_data().resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == "task.execution":
                            seen[name] = [list(p.bucket_counts) for p in m.data.data_points]
        print(json.dumps({
            "borrowed": runtime.current().telemetry.borrowed is provider,
            "seen": seen,
        }))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    assert "WARNING" not in done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = per_bucket([0.0, 0.01, 0.0100001, 60.0, 60.000001, 5000.0])
    assert result == {"borrowed": True, "seen": {"before": [expected]}}


def test_the_endpoint_never_shows_the_sdk_overflow_series_beside_an_otel_reader() -> None:
    # An OpenTelemetry reader of eddie's own provider records the same series through the SDK.
    eddie_otel.configure(serve=False, exporters="prometheus,console", export_interval_millis=3_600_000)
    assert runtime.current().telemetry.instruments is not None
    # 2 500 label combinations: past eddie's budget of 2 000 series, and past the SDK's default limit.
    for agent in range(50):
        for stage in range(50):
            eddie_otel.record_timeout(agent=f"a{agent}", stage=f"s{stage}", reason="deadline")
    text = runtime.current().telemetry.exposition()[0].decode()
    assert "otel_metric_overflow" not in text
    _, samples = families(text)["timeout_events"]
    assert sum(sample.value for sample in samples) == 2_500
    assert {frozenset(sample.labels) for sample in samples} == {frozenset({"agent", "stage", "reason"})}


def test_the_declared_minimum_versions_are_the_tested_ones() -> None:
    # Every OpenTelemetry requirement of pyproject.toml (dependencies and extras) has a lower bound.
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    minimums = dict(re.findall(r'"(opentelemetry-[a-z-]+)>=([0-9a-z.]+)"', pyproject))
    assert len(minimums) == len(re.findall(r'"opentelemetry-', pyproject))
    pinned = {}
    for line in (ROOT / "ci" / "oldest-constraints.txt").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name] = version
    assert set(minimums) == set(pinned)
    for name, version in pinned.items():
        # pyproject may write 1.43 for 1.43.0.
        assert version == minimums[name] or version == minimums[name] + ".0", name


def test_a_delta_reader_keeps_the_bases_of_live_series_when_forgotten_ones_are_pruned() -> None:
    from opentelemetry.sdk.metrics import Counter, ObservableCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    # What OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta asks for eddie's counters.
    delta = AggregationTemporality.DELTA
    reader = InMemoryMetricReader(preferred_temporality={Counter: delta, ObservableCounter: delta})
    provider = MeterProvider(metric_readers=[reader])
    eddie_otel.configure(serve=False, meter_provider=provider, max_label_values=1000)
    for n in range(200):
        eddie_otel.record_split(agent=f"a{n}", chunks=2, depth=1)
    reader.get_metrics_data()  # every series now has a delta base
    for n in range(1, 200):
        eddie_otel.forget_agent(f"a{n}")
    eddie_otel.record_split(agent="a0", chunks=2, depth=1)
    reader.get_metrics_data()  # forgotten series' bases are pruned here
    eddie_otel.record_split(agent="a0", chunks=2, depth=1)
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == by_prometheus_name("task_split_total").otel_name
        for point in metric.data.data_points
    ]
    # One split since the last collection, not the three since the start.
    assert [(dict(point.attributes), point.value) for point in points] == [({"agent": "a0"}, 1)]
