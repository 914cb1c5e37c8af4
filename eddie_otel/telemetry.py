"""The MeterProvider, its readers, and the export of the store's exact series to every reader.

The store is exported two ways. The Prometheus registry eddie-otel serves collects it
directly (`StoreCollector`). Every other reader of the provider (OTLP, console, the
readers of a borrowed provider, present and added later) gets it through the
`StoreBridge`, in its own temporality. Recording then costs a few writes under the
store's lock whatever the number of readers, instead of one SDK measurement per
reader. The bridge leans on SDK internals (checked when it is installed); where they
are missing, the store is exported through SDK instruments instead (observable
counters and gauges, SDK histograms), with one warning, and stays exact.
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from eddie_otel._version import __version__
from eddie_otel.bridge import StoreBridge
from eddie_otel.catalogue import METRICS, SELF_METRICS, Kind
from eddie_otel.collector import StoreCollector
from eddie_otel.config import Settings
from eddie_otel.errors import ConfigurationError
from eddie_otel.exposition import render
from eddie_otel.labels import LabelCap
from eddie_otel.store import Series, Store

__all__ = ["SCOPE_NAME", "Telemetry", "after_fork_in_child", "forget_borrowed"]

logger = logging.getLogger("eddie_otel")

SCOPE_NAME = "eddie_otel"
ALL_METRICS = (*METRICS, *SELF_METRICS)


def _observer(series: Series) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        attributes = series.attributes
        return [Observation(value, attributes[key]) for key, value in series.values().items()]

    return observe


class _Instruments:
    """The store, and how it reaches one provider's readers: the bridge, or SDK instruments where it cannot."""

    def __init__(self) -> None:
        self.store = Store(ALL_METRICS)
        self.bridge: StoreBridge | None = None
        # Only when the bridge cannot be installed: SDK histograms, fed by the recorder.
        self.sdk_histograms: dict[str, SdkHistogram] = {}

    def register(self, provider: MeterProvider) -> None:
        """Export the store to `provider`'s readers, through the bridge or else SDK instruments."""
        self.bridge = StoreBridge.install(provider, self.store, SCOPE_NAME)
        if self.bridge is not None:
            return
        meter = provider.get_meter(SCOPE_NAME, __version__)
        for metric in ALL_METRICS:
            options: dict[str, Any] = {"unit": metric.unit, "description": metric.description}
            if metric.kind is Kind.HISTOGRAM:
                self.sdk_histograms[metric.prometheus_name] = meter.create_histogram(  # type: ignore[assignment]
                    metric.otel_name, explicit_bucket_boundaries_advisory=list(metric.buckets or ()), **options
                )
                continue
            callbacks = [_observer(self.store.series[metric.prometheus_name])]
            if metric.kind is Kind.COUNTER:
                meter.create_observable_counter(metric.otel_name, callbacks=callbacks, **options)
            elif metric.prometheus_name == "agent_active_tasks":
                # An up-down count (exported as a gauge): the sum of tasks running on the agent.
                meter.create_observable_up_down_counter(metric.otel_name, callbacks=callbacks, **options)
            else:
                meter.create_observable_gauge(metric.otel_name, callbacks=callbacks, **options)


# The instruments made on each borrowed provider. A provider keeps its instruments for
# its whole life, so configuring again on the same provider reuses them, and with them
# their cumulative values: the provider's own readers never see a counter go back.
_BORROWED: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()
_BORROWED_LOCK = threading.Lock()


def after_fork_in_child() -> None:
    """In a forked child: fresh locks, and no counts of the parent's in the stores of borrowed providers."""
    global _BORROWED_LOCK
    _BORROWED_LOCK = threading.Lock()
    for instruments in list(_BORROWED.values()):
        instruments.store.reset_after_fork()


def forget_borrowed() -> None:
    """Zero the series kept for borrowed providers: what a full reset does."""
    with _BORROWED_LOCK:
        for instruments in list(_BORROWED.values()):
            instruments.store.clear()


class Telemetry:
    """One MeterProvider (owned, or an installed SDK one borrowed), its readers, the store and the label cap."""

    def __init__(
        self, settings: Settings, meter_provider: MeterProvider | None = None, instance_id: str | None = None
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.enabled = not settings.sdk_disabled
        instruments = None
        if meter_provider is not None:
            with _BORROWED_LOCK:
                instruments = _BORROWED.get(meter_provider)
        if instruments is None:
            instruments = _Instruments()
        self._instruments = instruments
        self.store = instruments.store
        self.store.budget = settings.max_series_per_metric
        self.registry = CollectorRegistry(auto_describe=True)
        self.readers: list[MetricReader] = []
        self._prometheus_reader: MetricReader | None = None
        self.provider: MeterProvider | None = None
        self.owns_provider = False
        self.label_cap = LabelCap(settings.max_label_values, self._count_capped)
        if self.enabled:
            self._build(meter_provider, instruments)

    @property
    def sdk_histograms(self) -> dict[str, SdkHistogram]:
        """SDK histograms to record into, when the store cannot be bridged to the readers (else empty)."""
        return self._instruments.sdk_histograms

    @property
    def bridged(self) -> bool:
        """Whether the store reaches the provider's readers through the bridge (not SDK instruments)."""
        return self._instruments.bridge is not None

    def _build(self, meter_provider: MeterProvider | None, instruments: _Instruments) -> None:
        settings = self.settings
        self.readers = self._make_readers()
        if meter_provider is None:
            identity = {"service.name": settings.service_name}
            if self.instance_id is not None:
                identity["service.instance.id"] = self.instance_id
            # OTEL_RESOURCE_ATTRIBUTES may name the instance itself: an explicit word wins.
            resource = Resource.create({**identity, **settings.resource_attributes})
            self.provider = MeterProvider(resource=resource, metric_readers=self.readers)
            self.owns_provider = True
            instruments.register(self.provider)
        else:
            self.provider = meter_provider
            for reader in self.readers:
                meter_provider.add_metric_reader(reader)
            with _BORROWED_LOCK:
                if meter_provider not in _BORROWED:
                    instruments.register(meter_provider)
                    _BORROWED[meter_provider] = instruments
        bridge = instruments.bridge
        if bridge is not None and self._prometheus_reader is not None:
            # The registry collects the store itself, faster and with exemplars: the reader adds only
            # target_info and the instruments of other libraries (the service's HTTP metrics).
            bridge.skip.add(self._prometheus_reader)
            self.registry.register(StoreCollector(self.store))

    def _limits(self, reader_class: type) -> dict[str, Any]:
        """`cardinality_limits=` above the store's series budget, where `reader_class` takes it (newer SDKs).

        The store keeps at most `max_series_per_metric` series and one overflow series per
        metric. Through the bridge they never reach the SDK's aggregation; through the SDK
        instruments (the fallback) they do, and the SDK's own limit (2 000 by default) must
        not fold them into an `otel_metric_overflow` series.
        """
        if "cardinality_limits" not in inspect.signature(reader_class).parameters:
            return {}
        from opentelemetry.sdk.metrics import (
            Histogram,
            ObservableCounter,
            ObservableGauge,
            ObservableUpDownCounter,
        )

        limit = self.settings.max_series_per_metric + 1
        classes = (Histogram, ObservableCounter, ObservableGauge, ObservableUpDownCounter)
        return {"cardinality_limits": dict.fromkeys(classes, limit)}

    def _make_readers(self) -> list[MetricReader]:
        settings = self.settings
        readers: list[MetricReader] = []
        for name in settings.exporters:
            if name == "prometheus":
                from opentelemetry.exporter.prometheus import PrometheusMetricReader

                self._prometheus_reader = PrometheusMetricReader(
                    scope_info_enabled=False, registry=self.registry, **self._limits(PrometheusMetricReader)
                )
                readers.append(self._prometheus_reader)
            elif name == "otlp":
                try:
                    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
                except ImportError:
                    raise ConfigurationError(
                        "OTEL_METRICS_EXPORTER includes otlp, but the OTLP exporter is not installed: "
                        "pip install 'eddie-otel[otlp]'"
                    ) from None
                from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

                readers.append(
                    PeriodicExportingMetricReader(
                        OTLPMetricExporter(),
                        export_interval_millis=settings.export_interval_millis,
                        **self._limits(PeriodicExportingMetricReader),
                    )
                )
            elif name == "console":
                from opentelemetry.sdk.metrics.export import (
                    ConsoleMetricExporter,
                    PeriodicExportingMetricReader,
                )

                readers.append(
                    PeriodicExportingMetricReader(
                        ConsoleMetricExporter(),
                        export_interval_millis=settings.export_interval_millis,
                        **self._limits(PeriodicExportingMetricReader),
                    )
                )
        return readers

    def _count_capped(self, label: str) -> None:
        store = self.store
        store.add(store.series["eddie_otel_label_values_capped_total"].cell((label,)))

    def exposition(self, accept: str | None = None, accept_encoding: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The registry's exposition negotiated from Accept and Accept-Encoding, and its headers."""
        return render(self.registry, accept, accept_encoding)

    def shutdown(self) -> None:
        """Flush and detach the readers, and shut an owned provider down."""
        if self.provider is None:
            return
        if self.owns_provider:
            self.provider.shutdown()
        else:
            for reader in self.readers:
                try:
                    # Removing a reader also shuts it down.
                    self.provider.remove_metric_reader(reader)
                except Exception:
                    logger.exception("eddie-otel: could not detach a metric reader")
        self.provider = None
