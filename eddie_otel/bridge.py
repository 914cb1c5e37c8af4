"""Export the store's exact series to every reader of an SDK MeterProvider.

The SDK gives each reader a collect callback (the provider's measurement consumer).
The bridge wraps that callback, for the readers present now and, through the
consumer, for those added later: each collection gets the store's series in the
eddie_otel scope, as the points the SDK's own instruments would make (counters as
monotonic sums, agent_active_tasks as a non-monotonic sum, limits as gauges,
histograms with their exact buckets), in the reader's temporality. Delta points cover
the time since that reader's last collection and are left out when nothing changed.
Histogram min and max are since the series started, for both temporalities: the
cells keep no per-reader extremes.

Readers in `skip` (the Prometheus reader whose registry already collects the store
directly) get nothing added. These SDK internals are checked by `install`; when one
is missing, it returns None and the caller falls back to SDK instruments.
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
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from eddie_otel._version import __version__
from eddie_otel.catalogue import Kind
from eddie_otel.store import Exemplar, Store

__all__ = ["StoreBridge"]

logger = logging.getLogger("eddie_otel")

_DELTA = AggregationTemporality.DELTA
_CUMULATIVE = AggregationTemporality.CUMULATIVE


def _instrument_classes() -> tuple[type, type, type] | None:
    """The SDK classes whose temporality a reader keeps: counter, up-down counter, histogram."""
    try:
        from opentelemetry.sdk.metrics._internal.instrument import (
            _Histogram,
            _ObservableCounter,
            _ObservableUpDownCounter,
        )
    except ImportError:
        return None
    return _ObservableCounter, _ObservableUpDownCounter, _Histogram


class StoreBridge:
    """Adds the store's series to each collection of one provider's readers."""

    def __init__(
        self, store: Store, scope: InstrumentationScope, resource: Resource, classes: tuple[type, type, type]
    ) -> None:
        self._store = store
        self._scope = scope
        self._resource = resource
        self._counter_class, self._up_down_class, self._histogram_class = classes
        # Readers that get nothing added: the ones whose registry collects the store itself.
        self.skip: weakref.WeakSet[MetricReader] = weakref.WeakSet()
        # Per delta reader: (metric, label values) -> what it was sent last, and when.
        self._last: weakref.WeakKeyDictionary[MetricReader, dict[Any, Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @classmethod
    def install(cls, provider: MeterProvider, store: Store, scope_name: str) -> StoreBridge | None:
        """Bridge `store`'s series to `provider`'s readers; None, with a warning, when the SDK does not allow it."""
        classes = _instrument_classes()
        try:
            consumer = provider._measurement_consumer
            readers = provider._all_metric_readers
            readers_lock = provider._all_metric_readers_lock
            resource = provider._sdk_config.resource
            original = consumer.collect
            usable = classes is not None and all(
                hasattr(reader, "_set_collect_callback") and hasattr(reader, "_instrument_class_temporality")
                for reader in readers
            )
        except AttributeError:
            usable = False
        if not usable:
            logger.warning(
                "eddie-otel: this opentelemetry-sdk does not allow exporting the exact series to its readers; "
                "recording through SDK instruments instead (exact, slower)"
            )
            return None
        bridge = cls(store, InstrumentationScope(scope_name, __version__), resource, classes)  # type: ignore[arg-type]

        def collect(reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
            data = original(reader, timeout_millis=timeout_millis)
            try:
                return bridge.extend(reader, data)
            except Exception:
                # The reader still gets the other instruments' data: a failure here is eddie's alone.
                logger.exception("eddie-otel: could not add the exact series to a metric reader's collection")
                return data

        with readers_lock:
            # Readers added later get their callback from the consumer's attribute.
            consumer.collect = collect  # type: ignore[method-assign,assignment]
            for reader in readers:
                reader._set_collect_callback(collect)
        return bridge

    def extend(self, reader: MetricReader, data: MetricsData | None) -> MetricsData | None:
        """`data` with the store's series added, in `reader`'s temporality (nothing for a reader in `skip`)."""
        if reader in self.skip:
            # Never None: the Prometheus exporter writes target_info only for a collection that has data.
            return data if data is not None else MetricsData([ResourceMetrics(self._resource, [], "")])
        metrics = self._metrics(reader)
        if not metrics:
            return data
        if data is None or not data.resource_metrics:
            scope = ScopeMetrics(self._scope, metrics, "")
            return MetricsData([ResourceMetrics(self._resource, [scope], "")])
        first, *rest = data.resource_metrics
        scopes = list(first.scope_metrics)
        for index, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == self._scope.name:
                scopes[index] = ScopeMetrics(scope_metrics.scope, [*metrics, *scope_metrics.metrics], "")
                break
        else:
            scopes.append(ScopeMetrics(self._scope, metrics, ""))
        return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *rest])

    def _temporality(self, reader: MetricReader, instrument_class: type) -> AggregationTemporality:
        temporalities = reader._instrument_class_temporality
        return temporalities.get(instrument_class, _CUMULATIVE)  # type: ignore[arg-type]

    def _metrics(self, reader: MetricReader) -> list[Metric]:
        now = time.time_ns()
        with self._lock:
            last = self._last.setdefault(reader, {})
        metrics = [*self._histograms(reader, now, last), *self._sums_and_gauges(reader, now, last)]
        if len(last) > 2 * self._store.size() + 64:
            # Series forgotten since: their delta bases go (a series that comes back starts afresh);
            # the others keep theirs.
            live = self._store.keys()
            for gone in [key for key in last if key not in live]:
                del last[gone]
        return metrics

    def _sums_and_gauges(self, reader: MetricReader, now: int, last: dict[Any, Any]) -> list[Metric]:
        metrics = []
        start = self._store.started_unix_nano
        for name, series in self._store.series.items():
            metric = series.metric
            values = series.values()
            if not values:
                continue
            attributes = series.attributes
            if metric.kind is Kind.GAUGE and name != "agent_active_tasks":
                points = [NumberDataPoint(attributes[key], start, now, value) for key, value in values.items()]
                data: Any = Gauge(data_points=points)
            else:
                monotonic = metric.kind is Kind.COUNTER
                temporality = self._temporality(reader, self._counter_class if monotonic else self._up_down_class)
                points = []
                for key, value in values.items():
                    point_start, point_value = start, value
                    if temporality is _DELTA:
                        previous = last.get((name, key))
                        last[(name, key)] = (value, now)
                        if previous is not None:
                            point_value, point_start = value - previous[0], previous[1]
                        if point_value == 0:
                            continue
                    points.append(NumberDataPoint(attributes[key], point_start, now, point_value))
                if not points:
                    continue
                data = Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=monotonic)
            metrics.append(Metric(name=metric.otel_name, description=metric.description, unit=metric.unit, data=data))
        return metrics

    def _histograms(self, reader: MetricReader, now: int, last: dict[Any, Any]) -> list[Metric]:
        temporality = self._temporality(reader, self._histogram_class)
        delta = temporality is _DELTA
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
        SdkExemplar(
            filtered_attributes={},
            value=exemplar.value,
            time_unix_nano=exemplar.time_unix_nano,
            span_id=exemplar.span_id,
            trace_id=exemplar.trace_id,
        )
        for exemplar in kept
        if exemplar is not None
    ]
