"""The catalogue: unique names, counter suffixes, duration buckets, lookups and the labels of docs/contract.md §2."""

from __future__ import annotations

import itertools

import pytest

from eddie_otel.catalogue import DURATION_BUCKETS, METRICS, QUEUE_WAIT_BUCKETS, Kind, by_prometheus_name


def test_prometheus_and_otel_names_are_unique() -> None:
    assert len({metric.prometheus_name for metric in METRICS}) == len(METRICS)
    assert len({metric.otel_name for metric in METRICS}) == len(METRICS)


def test_counters_and_only_counters_end_with_total() -> None:
    for metric in METRICS:
        assert metric.prometheus_name.endswith("_total") == (metric.kind is Kind.COUNTER), metric.prometheus_name


def test_histograms_use_the_duration_buckets() -> None:
    histograms = [metric for metric in METRICS if metric.kind is Kind.HISTOGRAM]
    assert [metric.prometheus_name for metric in histograms] == [
        "task_execution_seconds",
        "chunk_execution_seconds",
        "chunk_queue_wait_seconds",
    ]
    assert all(metric.buckets == DURATION_BUCKETS for metric in histograms[:2])
    # A queue wait starts at a millisecond, then has every boundary of the durations.
    assert (
        by_prometheus_name("chunk_queue_wait_seconds").buckets
        == QUEUE_WAIT_BUCKETS
        == (0.001, 0.005, *DURATION_BUCKETS)
    )
    assert all(metric.buckets is None for metric in METRICS if metric.kind is not Kind.HISTOGRAM)


def test_duration_buckets_are_strictly_increasing_with_a_boundary_at_60() -> None:
    assert 60.0 in DURATION_BUCKETS
    assert all(low < high for low, high in itertools.pairwise(DURATION_BUCKETS))


def test_by_prometheus_name_round_trips() -> None:
    for metric in METRICS:
        assert by_prometheus_name(metric.prometheus_name) is metric


def test_by_prometheus_name_raises_key_error_for_an_unknown_name() -> None:
    with pytest.raises(KeyError):
        by_prometheus_name("task_split")
    with pytest.raises(KeyError):
        by_prometheus_name("no_such_metric_total")


def test_key_strips_only_the_total_suffix() -> None:
    assert by_prometheus_name("timeout_events_total").key == "timeout_events"
    assert by_prometheus_name("task_split_chunks_total").key == "task_split_chunks"
    assert by_prometheus_name("task_execution_seconds").key == "task_execution_seconds"
    assert by_prometheus_name("agent_active_tasks").key == "agent_active_tasks"


@pytest.mark.parametrize(
    ("name", "kind", "labels"),
    [
        ("timeout_events_total", Kind.COUNTER, ("agent", "stage", "reason")),
        ("task_failure_total", Kind.COUNTER, ("stage", "reason")),
        ("task_execution_seconds", Kind.HISTOGRAM, ("stage",)),
        ("chunk_execution_seconds", Kind.HISTOGRAM, ("agent",)),
        ("agent_active_tasks", Kind.GAUGE, ("agent",)),
        ("docker_elastic_adjustment_total", Kind.COUNTER, ("container", "type")),
        ("docker_container_memory_limit_bytes", Kind.GAUGE, ("container",)),
        ("merge_deduplication_total", Kind.COUNTER, ()),
    ],
)
def test_kind_and_labels_are_the_contract(name: str, kind: Kind, labels: tuple[str, ...]) -> None:
    metric = by_prometheus_name(name)
    assert metric.kind is kind
    assert metric.labels == labels
