"""Export the store's exact histograms to every reader of an SDK MeterProvider.

The SDK gives each reader a collect callback (the provider's measurement consumer).
The bridge wraps that callback, for the readers present now and, through the
consumer, for those added later: each collection gets the store's histograms
appended to the eddie_otel scope, as points the SDK's own histograms would make,
in the reader's temporality (delta points cover the time since that reader's last
collection and are left out when nothing was observed in it). Min and max are since
the series started, for both temporalities: the cells keep no per-reader extremes.

These SDK internals are checked by `install`; when one is missing, it returns None
and the caller falls back to SDK histograms.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from eddie_otel._version import __version__
from eddie_otel.store import Exemplar, Store

__all__ = ["HistogramBridge"]

logger = logging.getLogger("eddie_otel")

_DELTA = AggregationTemporality.DELTA
_CUMULATIVE = AggregationTemporality.CUMULATIVE


def _histogram_class() -> type | None:
    try:
        from opentelemetry.sdk.metrics._internal.instrument import _Histogram
    except ImportError:
        return None
    return _Histogram


class HistogramBridge:
    """Adds the store's histograms to each collection of one provider's readers."""

    def __init__(self, store: Store, scope: InstrumentationScope, resource: Resource, histogram_class: type) -> None:
        self._store = store
        self._scope = scope
        self._resource = resource
        self._histogram_class = histogram_class
        # Per delta reader: (metric, label values) -> (bucket counts, count, sum, time) at its last collection.
        self._last: weakref.WeakKeyDictionary[MetricReader, dict[Any, tuple[list[int], int, float, int]]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    @classmethod
    def install(cls, provider: MeterProvider, store: Store, scope_name: str) -> HistogramBridge | None:
        """Bridge `store`'s histograms to `provider`'s readers; None, with a warning, when the SDK does not allow it."""
        histogram_class = _histogram_class()
        try:
            consumer = provider._measurement_consumer
            readers = provider._all_metric_readers
            readers_lock = provider._all_metric_readers_lock
            resource = provider._sdk_config.resource
            original = consumer.collect
            usable = histogram_class is not None and all(
                hasattr(reader, "_set_collect_callback") and hasattr(reader, "_instrument_class_temporality")
                for reader in readers
            )
        except AttributeError:
            usable = False
        if not usable:
            logger.warning(
                "eddie-otel: this opentelemetry-sdk does not allow exporting exact histograms to its readers; "
                "recording histograms through the SDK instead (exact, slower)"
            )
            return None
        bridge = cls(store, InstrumentationScope(scope_name, __version__), resource, histogram_class)  # type: ignore[arg-type]

        def collect(reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
            return bridge.extend(reader, original(reader, timeout_millis=timeout_millis))

        with readers_lock:
            # Readers added later get their callback from the consumer's attribute.
            consumer.collect = collect  # type: ignore[method-assign,assignment]
            for reader in readers:
                reader._set_collect_callback(collect)
        return bridge

    def extend(self, reader: MetricReader, data: MetricsData | None) -> MetricsData | None:
        """`data` with the store's histograms added, in `reader`'s temporality."""
        temporality = reader._instrument_class_temporality.get(self._histogram_class, _CUMULATIVE)  # type: ignore[arg-type]
        metrics = self._metrics(reader, temporality)
        if not metrics:
            return data
        if data is None or not data.resource_metrics:
            scope = ScopeMetrics(self._scope, metrics, "")
            return MetricsData([ResourceMetrics(self._resource, [scope], "")])
        first, *rest = data.resource_metrics
        scopes = list(first.scope_metrics)
        for index, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == self._scope.name:
                # Histograms first, as the SDK lists an instrument measured before the first collection.
                scopes[index] = ScopeMetrics(scope_metrics.scope, [*metrics, *scope_metrics.metrics], "")
                break
        else:
            scopes.append(ScopeMetrics(self._scope, metrics, ""))
        return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *rest])

    def _metrics(self, reader: MetricReader, temporality: AggregationTemporality) -> list[Metric]:
        now = time.time_ns()
        delta = temporality is _DELTA
        if delta:
            with self._lock:
                last = self._last.setdefault(reader, {})
        metrics = []
        for name, series in self._store.histograms.items():
            bounds = series.bounds
            points = []
            for key, start, counts, count, total, minimum, maximum, exemplars in series.snapshot():
                if delta:
                    previous = last.get((name, key))
                    last[(name, key)] = (counts, count, total, now)
                    if previous is not None:
                        old_counts, old_count, old_total, start = previous
                        counts = [new - old for new, old in zip(counts, old_counts, strict=True)]
                        count -= old_count
                        total -= old_total
                    if count == 0:
                        continue
                points.append(
                    HistogramDataPoint(
                        attributes=series.attributes[key],
                        start_time_unix_nano=start,
                        time_unix_nano=now,
                        count=count,
                        sum=total,
                        bucket_counts=counts,
                        explicit_bounds=bounds,
                        min=minimum,
                        max=maximum,
                        exemplars=_exemplars(exemplars),
                    )
                )
            if points:
                metric = series.metric
                metrics.append(
                    Metric(
                        name=metric.otel_name,
                        description=metric.description,
                        unit=metric.unit,
                        data=Histogram(data_points=points, aggregation_temporality=temporality),
                    )
                )
        return metrics


def _exemplars(kept: Sequence[Exemplar | None]) -> list[Any]:
    if not any(kept):
        return []
    from opentelemetry.sdk.metrics._internal.exemplar import Exemplar as SdkExemplar

    return [
        SdkExemplar({}, exemplar.value, exemplar.time_unix_nano, exemplar.span_id, exemplar.trace_id)
        for exemplar in kept
        if exemplar is not None
    ]
