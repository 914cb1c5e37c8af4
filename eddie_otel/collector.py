"""The store's series as Prometheus metric families, for the registry eddie-otel serves.

The families are built straight from the store's cells, with label sets rendered
once per series and kept: a scrape costs the samples and their encoding, nothing
more. Names, types, units and label order are what the OpenTelemetry Prometheus
exporter would give (labels sorted by name, `le` included), and histogram buckets
carry their latest exemplar (trace and span id) in the OpenMetrics format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar as PromExemplar
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from eddie_otel.catalogue import Kind, Metric
from eddie_otel.store import Exemplar, HistogramSeries, Series, Store

__all__ = ["StoreCollector"]

# Prometheus units for the catalogue's UCUM units that have one; the rest ({task}, ...) have none.
_UNITS = {"s": "seconds", "By": "bytes"}


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
