"""Durations on and around every bucket boundary, and where each exposition must put them."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from eddie_otel.catalogue import DURATION_BUCKETS


def boundary_values(bounds: Sequence[float] = DURATION_BUCKETS) -> list[float]:
    """0, each boundary, the floats just below and just above it, and values past the last boundary."""
    values = [0.0]
    for bound in bounds:
        values += [math.nextafter(bound, 0), bound, math.nextafter(bound, math.inf)]
    return [*values, bounds[-1] * 2, 86_400.0]


def per_bucket(values: Sequence[float], bounds: Sequence[float] = DURATION_BUCKETS) -> list[int]:
    """Per-bucket counts (the last bucket is +Inf), `le` inclusive: a value equal to a bound is in its bucket."""
    counts = [0] * (len(bounds) + 1)
    for value in values:
        index = next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))
        counts[index] += 1
    return counts


def prometheus_histogram(text: str, name: str, **labels: str) -> tuple[list[float], list[int], float, float]:
    """(le bounds without +Inf, per-bucket counts, count, sum) of one histogram series of a text exposition."""
    buckets: list[tuple[float, float]] = []
    count = total = math.nan
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if any(sample.labels.get(key) != value for key, value in labels.items()):
                continue
            if sample.name == f"{name}_bucket":
                buckets.append((float(sample.labels["le"]), float(sample.value)))
            elif sample.name == f"{name}_count":
                count = float(sample.value)
            elif sample.name == f"{name}_sum":
                total = float(sample.value)
    assert buckets, f"{name}{labels} not in the exposition"
    assert buckets[-1][0] == math.inf
    cumulative = [int(value) for _, value in buckets]
    counts = [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]
    return [bound for bound, _ in buckets[:-1]], counts, count, total


def sdk_histogram_points(metrics_data: Any, otel_name: str, **labels: str) -> list[Any]:
    """The data points of histogram `otel_name` with `labels` in SDK MetricsData (or an OTLP request)."""
    found = []
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != otel_name:
                    continue
                data = metric.histogram if hasattr(metric, "histogram") else metric.data
                for point in data.data_points:
                    attributes = point.attributes
                    if not isinstance(attributes, dict) and not hasattr(attributes, "items"):
                        attributes = {kv.key: kv.value.string_value for kv in attributes}
                    elif not isinstance(attributes, dict):
                        attributes = dict(attributes)
                    if all(attributes.get(key) == value for key, value in labels.items()):
                        found.append(point)
    return found
