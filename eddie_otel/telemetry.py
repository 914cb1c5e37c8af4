"""The export boundary: the store, and the one adapter per kind of reader that takes its series out.

- eddie's own Prometheus registry (the endpoint it serves): `collector.StoreCollector`
  reads the store directly, with the exact names and exemplars, plus `target_info`.
- OpenTelemetry readers: `instruments.OtelInstruments` makes the store's series
  instruments of a MeterProvider, which then exports them through its readers with
  every setting its owner made. That provider is either one eddie builds for the
  `otlp` and `console` exporters of OTEL_METRICS_EXPORTER, holding eddie's instruments
  only, or an SDK provider someone else installed, which eddie *borrows*: it creates
  its instruments there and nothing else (no reader, no exporter, no port).

Only public OpenTelemetry API is used, and nothing eddie did not create is changed.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Histogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from eddie_otel.catalogue import LABEL_VALUES_CAPPED
from eddie_otel.collector import ReaderCollector, StoreCollector, TargetInfoCollector
from eddie_otel.config import Settings
from eddie_otel.errors import ConfigurationError
from eddie_otel.exposition import render
from eddie_otel.instruments import ALL_METRICS, OtelInstruments
from eddie_otel.labels import LabelCap
from eddie_otel.store import Store
from eddie_otel.threads import quietly

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader

__all__ = [
    "Telemetry",
    "after_fork_in_child",
    "forget_borrowed",
    "otlp_exporter",
    "own_provider",
    "shutdown_at_exit",
    "shutdown_within",
]

logger = logging.getLogger("eddie_otel")


# The store and instruments made on each borrowed provider. A provider keeps its
# instruments for its whole life, so configuring again on the same provider reuses them,
# and with them their cumulative values: the provider's readers never see a counter go back.
_BORROWED: weakref.WeakKeyDictionary[MeterProvider, OtelInstruments] = weakref.WeakKeyDictionary()
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


# The providers eddie built and has not shut down yet, each with what to call it and the
# seconds its shutdown may take. eddie builds them with shutdown_on_exit=False (the SDK's
# own exit handler waits 30 s and more on a dead endpoint) and shuts them down at exit here.
_OWNED: weakref.WeakKeyDictionary[Any, tuple[str, float]] = weakref.WeakKeyDictionary()
_OWNED_LOCK = threading.Lock()
_exit_registered = False


def own_provider(provider: Any, name: str, seconds: float) -> None:
    """Shut `provider` (built by eddie, shutdown_on_exit=False) down at exit within `seconds`, unless done before.

    `name` says what it exports in the line logged when it does not finish in time.
    """
    global _exit_registered
    with _OWNED_LOCK:
        _OWNED[provider] = (name, seconds)
        if not _exit_registered:
            atexit.register(shutdown_at_exit)
            _exit_registered = True


def shutdown_at_exit() -> None:
    """Shut every provider eddie built and still runs down at once, within the longest of their timeouts.

    Registered with atexit by the first provider eddie builds; a process manager that
    skips atexit can call it itself. Later calls find nothing left to do.
    """
    with _OWNED_LOCK:
        owned = list(_OWNED.items())
    if owned:
        shutdown_within([(name, provider) for provider, (name, _) in owned], max(s for _, (_, s) in owned))


def shutdown_within(providers: Sequence[tuple[str, Any]], seconds: float) -> bool:
    """Shut `providers` (name, provider) down at once, each in a daemon thread, waiting `seconds` at most in all.

    A provider whose exporter's endpoint is dead (black-holed, closed, throttling) would
    hold the caller for as long as its exporter retries; past `seconds` it is left to
    finish in its thread, and one warning names what may not have been exported. True
    when every shutdown finished without error.
    """
    if not providers:
        return True
    with _OWNED_LOCK:
        for _, provider in providers:
            _OWNED.pop(provider, None)
    deadline = time.monotonic() + seconds
    failed: list[str] = []
    unfinished: list[str] = []
    threads = []
    for name, provider in providers:
        thread = threading.Thread(
            target=_shut_down, args=(name, provider, seconds, failed), name="eddie-otel-shutdown", daemon=True
        )
        try:
            quietly(thread.start)
        except RuntimeError:
            # No thread to be had (the interpreter is finalizing): waiting unbounded is worse than not flushing.
            unfinished.append(name)
        else:
            threads.append((name, thread))
    for _, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    unfinished += [name for name, thread in threads if thread.is_alive()]
    if unfinished:
        logger.warning(
            "eddie-otel: %s not flushed within %s s of shutdown; what was not exported yet is dropped "
            "(EDDIE_OTEL_SHUTDOWN_TIMEOUT_SECONDS)",
            " and ".join(unfinished),
            f"{seconds:g}",
        )
    elif failed:
        logger.warning("eddie-otel: %s", "; ".join(failed))
    return not unfinished and not failed


def _shut_down(name: str, provider: Any, seconds: float, failed: list[str]) -> None:
    try:
        if isinstance(provider, MeterProvider):
            # A second more than the caller waits: a provider still exporting when the wait ends
            # is the one named in the warning, never one the SDK gave up on a moment before.
            provider.shutdown(timeout_millis=(seconds + 1) * 1000)
        else:
            provider.shutdown()
    except Exception as error:
        failed.append(f"{name} failed to shut down: {' '.join(str(error).split())}")


def otlp_exporter(signal: str, protocol: str) -> Any:
    """The OTLP exporter class of `signal` ("metric" or "trace") for `protocol`; a clear error when not installed."""
    if protocol == "grpc":
        extra, module = "grpc", f"opentelemetry.exporter.otlp.proto.grpc.{signal}_exporter"
    else:
        extra, module = "otlp", f"opentelemetry.exporter.otlp.proto.http.{signal}_exporter"
    name = "OTLPMetricExporter" if signal == "metric" else "OTLPSpanExporter"
    try:
        found = __import__(module, fromlist=[name])
    except ImportError:
        raise ConfigurationError(
            f"the OTLP exporter for {protocol} is not installed: pip install 'eddie-otel[{extra}]'"
        ) from None
    return getattr(found, name)


class Telemetry:
    """The store, eddie's registry, and the MeterProvider eddie's series reach OpenTelemetry readers through."""

    def __init__(
        self, settings: Settings, meter_provider: MeterProvider | None = None, instance_id: str | None = None
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.enabled = not settings.sdk_disabled
        # An SDK provider someone else built, which gets eddie's instruments and nothing else.
        self.borrowed = meter_provider
        identity = {"service.name": settings.service_name}
        if instance_id is not None:
            identity["service.instance.id"] = instance_id
        # OTEL_RESOURCE_ATTRIBUTES may name the instance itself: an explicit word wins.
        self.resource = Resource.create({**identity, **settings.resource_attributes})
        instruments = None
        if meter_provider is not None:
            with _BORROWED_LOCK:
                instruments = _BORROWED.get(meter_provider)
        self.store = instruments.store if instruments is not None else Store(ALL_METRICS)
        self.store.budget = settings.max_series_per_metric
        self.registry = CollectorRegistry(auto_describe=True)
        # The provider eddie built for its OpenTelemetry exporters (None: none asked for, or one borrowed).
        self.provider: MeterProvider | None = None
        self.readers: list[MetricReader] = []
        self.instruments: OtelInstruments | None = instruments
        self._service_provider: MeterProvider | None = None
        self.label_cap = LabelCap(settings.max_label_values, self._count_capped)
        if self.enabled:
            self._build()

    @property
    def histograms(self) -> dict[str, Histogram]:
        """The SDK histograms finished tasks and chunks record into as well (empty without OpenTelemetry readers)."""
        return self.instruments.histograms if self.instruments is not None else {}

    def _build(self) -> None:
        self.registry.register(StoreCollector(self.store))
        self.registry.register(TargetInfoCollector(self.resource))
        borrowed = self.borrowed
        if borrowed is not None:
            with _BORROWED_LOCK:
                instruments = _BORROWED.get(borrowed)
                if instruments is None:
                    instruments = _BORROWED[borrowed] = OtelInstruments(borrowed, self.store)
            self.instruments = instruments
            return
        self.readers = self._make_readers()
        if self.readers:
            self.provider = MeterProvider(resource=self.resource, metric_readers=self.readers, shutdown_on_exit=False)
            own_provider(self.provider, self._exported("metrics"), self.settings.shutdown_timeout_seconds)
            self.instruments = OtelInstruments(self.provider, self.store)

    def _limits(self, reader_class: type) -> dict[str, Any]:
        """`cardinality_limits=` above the store's series budget, where `reader_class` takes it (newer SDKs).

        The store keeps at most `max_series_per_metric` series and one overflow series per
        metric; the SDK's own limit (2 000 by default) must not fold them into an
        `otel_metric_overflow` series on the readers eddie builds.
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
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

        readers: list[MetricReader] = []
        for name in self.settings.exporters:
            exporter: MetricExporter
            if name == "otlp":
                # The exporter reads the OTEL_EXPORTER_OTLP_* variables itself (endpoint, headers,
                # temporality preference, default histogram aggregation).
                exporter = otlp_exporter("metric", self.settings.metrics_protocol)()
            elif name == "console":
                exporter = ConsoleMetricExporter()
            else:
                continue
            # The reader starts its export thread as it is made.
            make = functools.partial(
                PeriodicExportingMetricReader,
                exporter,
                export_interval_millis=self.settings.export_interval_millis,
                **self._limits(PeriodicExportingMetricReader),
            )
            readers.append(quietly(make))
        return readers

    def service_meter_provider(self) -> MeterProvider:
        """A provider of eddie's own for the service's HTTP metrics, served on eddie's endpoint.

        Its one reader is an in-memory reader that eddie's registry renders at each scrape:
        eddie's endpoint depends on no other library's exporter.
        """
        if self._service_provider is None:
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            reader = InMemoryMetricReader()
            self._service_provider = MeterProvider(
                resource=self.resource, metric_readers=[reader], shutdown_on_exit=False
            )
            own_provider(self._service_provider, "the service's HTTP metrics", self.settings.shutdown_timeout_seconds)
            self.registry.register(ReaderCollector(reader))
        return self._service_provider

    def _count_capped(self, label: str) -> None:
        store = self.store
        store.add(store.of(LABEL_VALUES_CAPPED).cell((label,)))

    def exposition(self, accept: str | None = None, accept_encoding: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The registry's exposition negotiated from Accept and Accept-Encoding, and its headers."""
        return render(self.registry, accept, accept_encoding)

    def _exported(self, signal: str) -> str:
        """What eddie's provider exports through, for the line logged when its shutdown is late: `metrics (otlp)`."""
        return f"{signal} ({', '.join(name for name in self.settings.exporters if name != 'prometheus')})"

    def shutdown(self, also: Sequence[tuple[str, Any]] = ()) -> None:
        """Flush and shut down the providers eddie built, within EDDIE_OTEL_SHUTDOWN_TIMEOUT_SECONDS in all.

        A borrowed provider is left as it is (it keeps the instruments). What could not be
        flushed in time is said in one warning; the shutdowns go on in daemon threads.
        `also` (name, provider) are shut down at the same time, within the same wait: the
        tracing's provider, from `Tracing.release()`.
        """
        providers = list(also)
        if self.provider is not None:
            providers.append((self._exported("metrics"), self.provider))
        if self._service_provider is not None:
            providers.append(("the service's HTTP metrics", self._service_provider))
        self.provider = self._service_provider = None
        shutdown_within(providers, self.settings.shutdown_timeout_seconds)
