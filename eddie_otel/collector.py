"""What the registry eddie-otel serves collects: the store's series, `target_info`, and an SDK reader's metrics.

`StoreCollector` builds the families straight from the store's cells, with label sets
rendered once per series and kept: a scrape costs the samples and their encoding,
nothing more. Names, types, units and label order are what the OpenTelemetry
Prometheus exporter would give (labels sorted by name, `le` included), and histogram
buckets carry their latest exemplar (trace and span id) in the OpenMetrics format.

`TargetInfoCollector` renders the process's resource as `target_info`, as that
exporter does. `ReaderCollector` renders what an SDK `InMemoryMetricReader` of a
provider eddie-otel built collects (the service's own HTTP metrics), through public
data classes only; what it cannot render is left out and logged, never a failed scrape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import InfoMetricFamily
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar as PromExemplar
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from eddie_otel.catalogue import Kind, Metric
from eddie_otel.store import Exemplar, HistogramSeries, Series, Store

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

__all__ = ["ReaderCollector", "StoreCollector", "TargetInfoCollector"]

logger = logging.getLogger("eddie_otel")

# Prometheus units for the catalogue's UCUM units that have one; the rest ({task}, ...) have none.
_UNITS = {"s": "seconds", "By": "bytes"}


_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _label_name(key: str) -> str:
    """An attribute key as a Prometheus label name: what is not a letter, digit or underscore becomes one."""
    name = _INVALID.sub("_", key)
    return "_" + name if name[:1].isdigit() else name


def _sorted(labels: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted(labels.items()))


class StoreCollector(Collector):
    """Collects every series of `store` as Prometheus families (a prometheus_client collector)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Per series (metric name, label values): the labels of each sample, built once.
        self._labels: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
        self._bucket_labels: dict[tuple[str, tuple[str, ...]], list[dict[str, str]]] = {}

    def collect(self) -> Iterator[Family]:
        """The families of the store, histograms first, then the rest in catalogue order."""
        store = self._store
        live = store.size()
        if len(self._labels) > 2 * live + 64:
            # Series forgotten since: drop the labels kept for them.
            self._labels.clear()
            self._bucket_labels.clear()
        for histogram in store.histograms.values():
            family = self._histogram(histogram)
            if family is not None:
                yield family
        for series in store.series.values():
            family = self._series(series)
            if family is not None:
                yield family

    def _family(self, metric: Metric, kind: str) -> Family:
        name = metric.prometheus_name
        if kind == "counter":
            name = name.removesuffix("_total")
        return Family(name, metric.description, kind, _UNITS.get(metric.unit, ""))

    def _series(self, series: Series) -> Family | None:
        values = series.values()
        if not values:
            return None
        metric = series.metric
        counter = metric.kind is Kind.COUNTER
        family = self._family(metric, "counter" if counter else "gauge")
        sample_name = metric.prometheus_name
        name = metric.prometheus_name
        cache = self._labels
        samples = family.samples
        for key, value in values.items():
            labels = cache.get((name, key))
            if labels is None:
                labels = cache[(name, key)] = _sorted(series.attributes[key])
            samples.append(Sample(sample_name, labels, value, None, None))
        return family

    def _histogram(self, series: HistogramSeries) -> Family | None:
        snapshot = series.snapshot()
        if not snapshot:
            return None
        metric = series.metric
        name = metric.prometheus_name
        family = self._family(metric, "histogram")
        bucket_name, count_name, sum_name = name + "_bucket", name + "_count", name + "_sum"
        bounds = [*(floatToGoString(bound) for bound in series.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        samples = family.samples
        labels_cache, buckets_cache = self._labels, self._bucket_labels
        for key, _start, counts, count, total, _minimum, _maximum, exemplars in snapshot:
            labels = labels_cache.get((name, key))
            if labels is None:
                labels = labels_cache[(name, key)] = _sorted(series.attributes[key])
                buckets_cache[(name, key)] = [_sorted({**labels, "le": bound}) for bound in bounds]
            cumulative = 0
            for index, bucket_labels in enumerate(buckets_cache[(name, key)]):
                cumulative += counts[index]
                exemplar = exemplars[index] if exemplars else None
                samples.append(
                    Sample(
                        bucket_name,
                        bucket_labels,
                        float(cumulative),
                        None,
                        None if exemplar is None else _exemplar(exemplar),
                    )
                )
            samples.append(Sample(count_name, labels, float(count), None, None))
            samples.append(Sample(sum_name, labels, total, None, None))
        return family


def _exemplar(exemplar: Exemplar) -> PromExemplar:
    return PromExemplar(
        {"trace_id": f"{exemplar.trace_id:032x}", "span_id": f"{exemplar.span_id:016x}"},
        exemplar.value,
        exemplar.time_unix_nano / 1e9,
    )


class TargetInfoCollector(Collector):
    """The resource's attributes as `target_info` (service name, instance id, ...), value 1."""

    def __init__(self, resource: Resource) -> None:
        attributes = {_label_name(str(key)): str(value) for key, value in resource.attributes.items()}
        self._family = InfoMetricFamily("target", "Target metadata", value=_sorted(attributes))

    def collect(self) -> Iterator[Family]:
        """The one `target_info` family."""
        yield self._family


class ReaderCollector(Collector):
    """What an SDK `InMemoryMetricReader` (cumulative) collects, as Prometheus families.

    Sums, gauges and explicit-bucket histograms are rendered with the names the
    OpenTelemetry Prometheus exporter gives them (dots as underscores, the unit's
    suffix, `_total` on monotonic sums); any other kind of point is left out.
    """

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[Family]:
        """The reader's metrics now; nothing when it has none or cannot collect."""
        try:
            data = self._reader.get_metrics_data()
        except Exception:
            logger.exception("eddie-otel: could not collect the service's own metrics")
            return
        if data is None:
            return
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    family = _family_of(metric)
                    if family is not None:
                        yield family


def _family_of(metric: object) -> Family | None:
    from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

    name = _label_name(getattr(metric, "name", ""))
    unit = _UNITS.get(getattr(metric, "unit", "") or "", "")
    if unit and not name.endswith("_" + unit):
        name = f"{name}_{unit}"
    description = getattr(metric, "description", "") or ""
    data = getattr(metric, "data", None)
    if isinstance(data, Sum) and data.is_monotonic:
        family = Family(name.removesuffix("_total"), description, "counter", unit)
        for point in data.data_points:
            family.add_sample(family.name + "_total", _attributes(point.attributes), float(point.value))
        return family
    if isinstance(data, (Sum, Gauge)):
        family = Family(name, description, "gauge", unit)
        for point in data.data_points:
            family.add_sample(name, _attributes(point.attributes), float(point.value))
        return family
    if isinstance(data, Histogram):
        family = Family(name, description, "histogram", unit)
        for histogram_point in data.data_points:
            labels = _attributes(histogram_point.attributes)
            cumulative = 0
            bounds = [*(floatToGoString(bound) for bound in histogram_point.explicit_bounds), "+Inf"]  # type: ignore[no-untyped-call]
            for bound, count in zip(bounds, histogram_point.bucket_counts, strict=True):
                cumulative += count
                family.add_sample(name + "_bucket", _sorted({**labels, "le": bound}), float(cumulative))
            family.add_sample(name + "_count", labels, float(histogram_point.count))
            family.add_sample(name + "_sum", labels, float(histogram_point.sum))
        return family
    return None


def _attributes(attributes: Mapping[str, object] | None) -> dict[str, str]:
    return _sorted({_label_name(str(key)): str(value) for key, value in (attributes or {}).items()})
