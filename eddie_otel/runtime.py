"""The process-wide setup: configure(), shutdown(), reset(), and the configured runtime."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider

from eddie_otel.config import Settings
from eddie_otel.endpoint import MetricsServer
from eddie_otel.errors import EddieOtelError
from eddie_otel.history import History
from eddie_otel.recording.recorder import Recorder
from eddie_otel.summary import summary
from eddie_otel.telemetry import Telemetry, forget_borrowed
from eddie_otel.tracing import Tracing

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["Runtime", "configure", "configured", "current", "current_recorder", "reset", "shutdown"]

logger = logging.getLogger("eddie_otel")


class Runtime:
    """What configure() built: the settings, the telemetry, the history, the recorder and the agent endpoint."""

    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry,
        server: MetricsServer | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.history = History(telemetry.store, ttl_seconds=settings.series_ttl_seconds)
        self.tracing = tracing
        self.recorder = Recorder(settings, telemetry, self.history, tracing)
        self.server = server

    def close(self) -> None:
        """Stop the endpoint and flush and detach the telemetry."""
        if self.server is not None:
            self.server.close()
            self.server = None
        self.telemetry.shutdown()
        if self.tracing is not None:
            self.tracing.shutdown()


_lock = threading.RLock()
# The configured runtime, read on every recorded call; replaced, never mutated.
_runtime: Runtime | None = None


def configure(
    *,
    service_name: str | None = None,
    host: str | None = None,
    port: int | None = None,
    serve: bool | None = None,
    exporters: str | tuple[str, ...] | None = None,
    max_fallback_depth: int | None = None,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> Runtime:
    """Set eddie-otel up from arguments, then OTEL_*/EDDIE_OTEL_* variables, then defaults.

    Idempotent: a second call with the same settings returns the runtime already
    built; with other settings it replaces it. `serve=False` opens no port (for an
    app that serves /metrics/prometheus itself). An SDK MeterProvider already
    installed globally (for example by `opentelemetry-instrument`) is used rather
    than replaced, unless `meter_provider` names another. Spans go through
    `tracer_provider`, else the installed TracerProvider, else one built for
    OTEL_TRACES_EXPORTER (none by default: no spans).
    """
    global _runtime
    loaded = Settings.load(
        environ,
        service_name=service_name,
        host=host,
        port=port,
        serve=serve,
        exporters=exporters,
        max_fallback_depth=max_fallback_depth,
        **settings,
    )
    with _lock:
        if _runtime is not None:
            if (
                _runtime.settings == loaded
                and meter_provider in (None, _runtime.telemetry.provider)
                and tracer_provider is None
            ):
                return _runtime
            logger.info("eddie-otel: reconfiguring with new settings")
            _shutdown_locked()
        provider = meter_provider
        if provider is None and not loaded.sdk_disabled:
            installed = metrics.get_meter_provider()
            if isinstance(installed, MeterProvider):
                provider = installed
        telemetry = Telemetry(loaded, provider)
        # The endpoint starts before the runtime exists: its summary reads the runtime once built.
        built: list[Runtime] = []
        server = None
        tracing = None
        try:
            tracing = Tracing.install(loaded, telemetry, tracer_provider)
            if loaded.serve and telemetry.enabled and loaded.prometheus_enabled:
                server = MetricsServer(
                    telemetry.registry,
                    loaded.host,
                    loaded.port,
                    service_name=loaded.service_name,
                    summary=lambda: dict(summary(built[0])) if built else None,
                )
        except Exception:
            telemetry.shutdown()
            if tracing is not None:
                tracing.shutdown()
            raise
        _runtime = Runtime(loaded, telemetry, server, tracing)
        built.append(_runtime)
        return _runtime


def current() -> Runtime:
    """The configured runtime; configures from the environment on first use if nobody did."""
    runtime = _runtime
    if runtime is not None:
        return runtime
    with _lock:
        if _runtime is None:
            logger.info("eddie-otel: configure() was not called; configuring from the environment")
            try:
                return configure()
            except EddieOtelError as error:
                # Recording must not break the caller: keep counting, without the port.
                logger.error("eddie-otel: %s; recording without serving metrics", error)
                return configure(serve=False)
        return _runtime


def configured() -> Runtime | None:
    """The configured runtime, or None when nothing is configured (never configures)."""
    return _runtime


def current_recorder() -> Recorder:
    """The configured runtime's recorder (what the module-level decorators and record calls use)."""
    runtime = _runtime
    if runtime is not None:
        return runtime.recorder
    return current().recorder


def shutdown() -> None:
    """Flush and stop everything configure() started; recording afterwards configures again."""
    with _lock:
        _shutdown_locked()


def _shutdown_locked() -> None:
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()


def reset() -> None:
    """Forget all state, as after a fresh import: what tests use between cases.

    Shuts down, and zeroes the series kept for borrowed providers, whose instruments
    outlive a shutdown (the SDK keeps them for the provider's life).
    """
    with _lock:
        _shutdown_locked()
        forget_borrowed()
