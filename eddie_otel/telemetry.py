"""The MeterProvider, its readers and the instruments of the catalogue.

Counters and gauges are observable instruments backed by exact cells that the
recording layer updates under one lock: an update costs a few attribute writes
instead of an SDK measurement, and the counts stay exact under threads.
Histograms are SDK histograms with the catalogue's seconds buckets.
"""

from __future__ import annotations

import gzip
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from eddie_otel._version import __version__
from eddie_otel.catalogue import METRICS, SELF_METRICS, Kind, Metric
from eddie_otel.config import Settings
from eddie_otel.errors import ConfigurationError, EddieOtelError
from eddie_otel.labels import LabelCap

__all__ = ["METRICS_PATH", "Cell", "ExactSeries", "Telemetry"]

logger = logging.getLogger("eddie_otel")

METRICS_PATH = "/metrics/prometheus"
SCOPE_NAME = "eddie_otel"


class Cell:
    """One exact value of one series; written only under `Telemetry.lock`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0


class ExactSeries:
    """The cells of one counter or gauge, one per label-value tuple, read by its callback."""

    def __init__(self, metric: Metric, lock: threading.Lock) -> None:
        self.metric = metric
        self._lock = lock
        self._cells: dict[tuple[str, ...], Cell] = {}
        self._attributes: dict[tuple[str, ...], Mapping[str, str]] = {}

    def cell(self, key: tuple[str, ...]) -> Cell:
        """The cell for label values `key` (in catalogue label order), created on first use."""
        cell = self._cells.get(key)
        if cell is None:
            with self._lock:
                cell = self._cells.get(key)
                if cell is None:
                    cell = Cell()
                    self._attributes[key] = dict(zip(self.metric.labels, key, strict=True))
                    self._cells[key] = cell
        return cell

    def add(self, key: tuple[str, ...], amount: float) -> None:
        """Add `amount` to the series `key`."""
        cell = self.cell(key)
        with self._lock:
            cell.value += amount

    def set(self, key: tuple[str, ...], value: float) -> None:
        """Set the series `key` to `value` (gauges)."""
        cell = self.cell(key)
        with self._lock:
            cell.value = value

    def values(self) -> dict[tuple[str, ...], float]:
        """A consistent snapshot of every series."""
        with self._lock:
            return {key: cell.value for key, cell in self._cells.items()}

    def total(self) -> float:
        """The sum over every series."""
        with self._lock:
            return sum(cell.value for cell in self._cells.values())

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        """The observable instrument's callback."""
        with self._lock:
            snapshot = [(key, cell.value) for key, cell in self._cells.items()]
        return [Observation(value, self._attributes[key]) for key, value in snapshot]


class _Instruments:
    """The exact series and SDK histograms of the catalogue, and the instruments that read them."""

    def __init__(self) -> None:
        # One lock for every exact cell: a decorated call updates several series at
        # once, and one acquisition is cheaper than one per series.
        self.lock = threading.Lock()
        self.series = {
            metric.prometheus_name: ExactSeries(metric, self.lock)
            for metric in (*METRICS, *SELF_METRICS)
            if metric.kind is not Kind.HISTOGRAM
        }
        self.histograms: dict[str, SdkHistogram] = {}

    def register(self, provider: MeterProvider) -> None:
        """Create the instruments on `provider`'s eddie_otel meter."""
        meter = provider.get_meter(SCOPE_NAME, __version__)
        for metric in (*METRICS, *SELF_METRICS):
            name = metric.prometheus_name
            options: dict[str, Any] = {"unit": metric.unit, "description": metric.description}
            if metric.kind is Kind.HISTOGRAM:
                self.histograms[name] = meter.create_histogram(  # type: ignore[assignment]
                    metric.otel_name, explicit_bucket_boundaries_advisory=list(metric.buckets or ()), **options
                )
                continue
            callbacks = [self.series[name].observe]
            if metric.kind is Kind.COUNTER:
                meter.create_observable_counter(metric.otel_name, callbacks=callbacks, **options)
            elif name == "agent_active_tasks":
                # An up-down count (exported as a gauge): the sum of tasks running on the agent.
                meter.create_observable_up_down_counter(metric.otel_name, callbacks=callbacks, **options)
            else:
                meter.create_observable_gauge(metric.otel_name, callbacks=callbacks, **options)


# The instruments made on each borrowed provider. A provider keeps its instruments for
# its whole life, so configuring again on the same provider reuses them, and with them
# their cumulative values: the provider's own readers never see a counter go back.
_BORROWED: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()


class Telemetry:
    """One MeterProvider (owned, or an installed SDK one borrowed), its readers and instruments."""

    def __init__(self, settings: Settings, meter_provider: MeterProvider | None = None) -> None:
        self.settings = settings
        self.enabled = not settings.sdk_disabled
        instruments = _BORROWED.get(meter_provider) if meter_provider is not None else None
        if instruments is None:
            instruments = _Instruments()
        self.lock = instruments.lock
        self.series = instruments.series
        self.histograms = instruments.histograms
        self.registry = CollectorRegistry(auto_describe=True)
        self.readers: list[MetricReader] = []
        self.provider: MeterProvider | None = None
        self.owns_provider = False
        self.server: MetricsServer | None = None
        self.label_cap = LabelCap(settings.max_label_values, self._count_capped)
        if self.enabled:
            self._build(meter_provider, instruments)

    def _build(self, meter_provider: MeterProvider | None, instruments: _Instruments) -> None:
        settings = self.settings
        self.readers = self._make_readers()
        if meter_provider is None:
            resource = Resource.create({"service.name": settings.service_name, **settings.resource_attributes})
            self.provider = MeterProvider(resource=resource, metric_readers=self.readers)
            self.owns_provider = True
            instruments.register(self.provider)
            return
        self.provider = meter_provider
        for reader in self.readers:
            meter_provider.add_metric_reader(reader)
        if meter_provider not in _BORROWED:
            instruments.register(meter_provider)
            _BORROWED[meter_provider] = instruments

    def _make_readers(self) -> list[MetricReader]:
        settings = self.settings
        readers: list[MetricReader] = []
        for name in settings.exporters:
            if name == "prometheus":
                from opentelemetry.exporter.prometheus import PrometheusMetricReader

                readers.append(PrometheusMetricReader(scope_info_enabled=False, registry=self.registry))
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
                        OTLPMetricExporter(), export_interval_millis=settings.export_interval_millis
                    )
                )
            elif name == "console":
                from opentelemetry.sdk.metrics.export import (
                    ConsoleMetricExporter,
                    PeriodicExportingMetricReader,
                )

                readers.append(
                    PeriodicExportingMetricReader(
                        ConsoleMetricExporter(), export_interval_millis=settings.export_interval_millis
                    )
                )
        return readers

    def _count_capped(self, label: str) -> None:
        self.series["eddie_otel_label_values_capped_total"].add((label,), 1)

    def serve(self) -> None:
        """Serve the registry on settings.host:port at /metrics/prometheus in a daemon thread."""
        if self.server is not None or not self.enabled or not self.settings.prometheus_enabled:
            return
        self.server = MetricsServer(self.registry, self.settings.host, self.settings.port)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry as text (or OpenMetrics when `accept` asks for it), and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def shutdown(self) -> None:
        """Stop the server, flush and detach the readers, and shut an owned provider down."""
        if self.server is not None:
            self.server.close()
            self.server = None
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


class MetricsServer:
    """A small HTTP server for agent processes: GET /metrics/prometheus, nothing else."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        handler = _handler_for(registry)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise EddieOtelError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}; "
                "set OTEL_EXPORTER_PROMETHEUS_PORT (or port=) to a free port"
            ) from None
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="eddie-otel-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != METRICS_PATH:
                self._reply(404, b"not found: metrics are at " + METRICS_PATH.encode() + b"\n", "text/plain")
                return
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body = encoder(registry)
            headers = {}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body)
                headers["Content-Encoding"] = "gzip"
            self._reply(200, body, content_type, headers)

        def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("metrics endpoint: " + format, *args)

    return Handler
