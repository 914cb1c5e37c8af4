"""The store's series as OpenTelemetry instruments: how eddie's series reach OpenTelemetry readers.

One `OtelInstruments` is made on one MeterProvider (one eddie built for its OTLP or
console exporters, or one it borrows) through the public metrics API only. Counters
and gauges are observable instruments whose callbacks read the store's exact values at
each collection: recording costs them nothing more. Histograms are SDK histograms that
each finished task or chunk records into as well (the API has no observable histogram).
The provider then applies everything its owner set, as for any other instrument: Views
(rename, drop, attribute filter, aggregation), each reader's temporality and preferred
aggregation, the exemplar filter and the cardinality limits.

A provider keeps its instruments for its whole life (the API cannot remove one): the
instruments made on a borrowed provider are made once and reused by every later
configuration on it, so its readers never see a series start over.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation

from eddie_otel._version import __version__
from eddie_otel.catalogue import METRICS, SELF_METRICS, Kind
from eddie_otel.store import Series, Store

__all__ = ["ALL_METRICS", "SCOPE_NAME", "OtelInstruments", "record"]

SCOPE_NAME = "eddie_otel"
ALL_METRICS = (*METRICS, *SELF_METRICS)


def _takes_context() -> bool:
    # Histogram.record(..., context=) came with exemplars (API 1.26); older APIs read the current context.
    return "context" in inspect.signature(Histogram.record).parameters


_RECORD_TAKES_CONTEXT = _takes_context()


def record(histogram: Histogram, seconds: float, attributes: dict[str, str], context: Context | None) -> None:
    """Record `seconds` into an SDK histogram, in `context` (the call's span, for exemplars) where the API takes it."""
    if context is not None and _RECORD_TAKES_CONTEXT:
        histogram.record(seconds, attributes, context=context)
    else:
        histogram.record(seconds, attributes)


class OtelInstruments:
    """Every metric of the catalogue as an instrument of one meter, reading (or fed with) one store."""

    def __init__(self, provider: MeterProvider, store: Store) -> None:
        self.store = store
        meter: Meter = provider.get_meter(SCOPE_NAME, __version__)
        # The SDK histograms that finished tasks and chunks record into, by Prometheus name.
        self.histograms: dict[str, Histogram] = {}
        for metric in ALL_METRICS:
            options: dict[str, Any] = {"unit": metric.unit, "description": metric.description}
            if metric.kind is Kind.HISTOGRAM:
                # The advisory carries the catalogue's buckets to any provider; a View or a
                # reader's preferred aggregation still wins, as the owner of the provider wants.
                self.histograms[metric.prometheus_name] = meter.create_histogram(
                    metric.otel_name, explicit_bucket_boundaries_advisory=list(metric.buckets or ()), **options
                )
                continue
            callbacks = [self._observer(store.series[metric.prometheus_name])]
            if metric.kind is Kind.COUNTER:
                meter.create_observable_counter(metric.otel_name, callbacks=callbacks, **options)
            elif metric.up_down:
                meter.create_observable_up_down_counter(metric.otel_name, callbacks=callbacks, **options)
            else:
                meter.create_observable_gauge(metric.otel_name, callbacks=callbacks, **options)

    @staticmethod
    def _observer(series: Series) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, attributes) for attributes, value in series.items()]

        return observe
