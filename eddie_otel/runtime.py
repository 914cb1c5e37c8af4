"""The process-wide setup: configure(), shutdown(), reset(), and the configured runtime."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider

from eddie_otel import environment as env
from eddie_otel import threads, timeouts
from eddie_otel.config import Settings
from eddie_otel.discovery import Announcement, DiscoveryError, advertised_host
from eddie_otel.endpoint import MetricsServer
from eddie_otel.errors import ConfigurationError, EddieOtelError
from eddie_otel.history import History
from eddie_otel.recording.recorder import Recorder
from eddie_otel.summary import summary
from eddie_otel.telemetry import Telemetry, after_fork_in_child, forget_borrowed
from eddie_otel.tracing import Tracing

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = [
    "Runtime",
    "configure",
    "configured",
    "current",
    "current_recorder",
    "disable",
    "enable",
    "instance_id",
    "reset",
    "shutdown",
]

logger = logging.getLogger("eddie_otel")


class Runtime:
    """What configure() built: the settings, the telemetry, the history, the recorder and the agent endpoint."""

    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry,
        server: MetricsServer | None = None,
        announcement: Announcement | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.history = History(telemetry.store)
        self.tracing = tracing
        self.recorder = Recorder(settings, telemetry, self.history, tracing)
        # task_timeout_recommended_seconds is computed from the history's rings when read.
        self.timeout_policy = timeouts.install(telemetry.store, self.history, settings)
        self.server = server
        self.announcement = announcement

    def announce(self, port: int) -> None:
        """Announce this process's endpoint on `port` in the discovery directory, when one is set.

        The file is withdrawn when this runtime closes and when the process ends (see
        `_withdraw_when_ending`). DiscoveryError, naming the variable, when the directory
        cannot be written.
        """
        directory = self.settings.discovery_dir
        if directory is None:
            return
        announcement = Announcement(Path(directory), self.settings.service_name, instance_id())
        announcement.write(advertised_host(self.settings.host, self.settings.advertise_host), port)
        self.announcement = announcement
        _withdraw_when_ending()

    def close_in_child(self) -> None:
        """In a forked child, stop what the parent's runtime left here (its endpoint is already abandoned)."""
        self._shutdown_telemetry()

    def _shutdown_telemetry(self) -> None:
        # Metrics and traces flush at once, within one EDDIE_OTEL_SHUTDOWN_TIMEOUT_SECONDS.
        self.telemetry.shutdown(also=self.tracing.release() if self.tracing is not None else ())

    def close(self) -> None:
        """Withdraw the announcement, stop the endpoint, and flush and detach the telemetry."""
        self.recorder.close()
        if self.announcement is not None:
            self.announcement.remove()
            self.announcement = None
        if self.server is not None:
            self.server.close()
            self.server = None
        self._shutdown_telemetry()


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
    app that serves /metrics/prometheus itself).

    An SDK MeterProvider already installed globally (by the application or
    `opentelemetry-instrument`), or `meter_provider`, is borrowed: eddie's instruments
    are made on it and its own exporters take them out, once; eddie adds no reader or
    exporter to it and opens no port unless `serve=True` is given (then on `port`, else
    8503: the OTEL_METRICS_EXPORTER and OTEL_EXPORTER_PROMETHEUS_* variables belong to
    that provider's SDK). Spans go through `tracer_provider`, else the installed
    TracerProvider, else one built for OTEL_TRACES_EXPORTER (none by default: no spans).
    """
    global _runtime, _gave_up
    provider = _provider_to_borrow(meter_provider, environ, settings)
    loaded = Settings.load(
        environ if provider is None else _without_sdk_variables(environ),
        service_name=service_name,
        host=host,
        port=port,
        serve=serve,
        exporters=exporters,
        max_fallback_depth=max_fallback_depth,
        **settings,
    )
    with _lock:
        if _runtime is None and _inherited is not None and _inherited.settings == loaded and meter_provider is None:
            # A forked child configuring as its parent did: its own runtime, on a port of its own.
            _runtime = _rebuild_inherited()
            if _runtime is not None:
                return _runtime
        if _runtime is not None:
            if _runtime.settings == loaded and provider is _runtime.telemetry.borrowed and tracer_provider is None:
                return _runtime
            logger.info("eddie-otel: reconfiguring with new settings")
            _shutdown_locked()
        _runtime = _build(loaded, None if loaded.sdk_disabled else provider, tracer_provider)
        _gave_up = False
        return _runtime


def _provider_to_borrow(
    meter_provider: MeterProvider | None, environ: Mapping[str, str] | None, settings: Mapping[str, Any]
) -> MeterProvider | None:
    """`meter_provider`, else the SDK MeterProvider installed globally (unless the SDK is disabled), else None."""
    if meter_provider is not None or _sdk_disabled(environ, settings):
        return meter_provider
    installed = metrics.get_meter_provider()
    return installed if isinstance(installed, MeterProvider) else None


# The variables that configure an SDK's own readers: when eddie borrows a provider they are that SDK's.
_SDK_VARIABLES = frozenset(
    {env.OTEL_METRICS_EXPORTER, env.OTEL_EXPORTER_PROMETHEUS_HOST, env.OTEL_EXPORTER_PROMETHEUS_PORT}
)


def _without_sdk_variables(environ: Mapping[str, str] | None) -> dict[str, str]:
    given = os.environ if environ is None else environ
    return {name: value for name, value in given.items() if name not in _SDK_VARIABLES}


def _sdk_disabled(environ: Mapping[str, str] | None, settings: Mapping[str, Any]) -> bool:
    """Whether OTEL_SDK_DISABLED (or `sdk_disabled=`) turns the SDK off: then nothing is borrowed."""
    if settings.get("sdk_disabled") is not None:
        return bool(settings["sdk_disabled"])
    given = os.environ if environ is None else environ
    return given.get(env.OTEL_SDK_DISABLED, "").strip().lower() in ("true", "1", "yes", "on")


def _build(
    loaded: Settings,
    provider: MeterProvider | None,
    tracer_provider: TracerProvider | None = None,
    port: int | None = None,
) -> Runtime:
    """Telemetry, tracing, the agent endpoint (on `port`, default the configured one) and the runtime around them."""
    _watch_forks()
    telemetry = Telemetry(loaded, provider, instance_id())
    # The endpoint starts before the runtime exists: its summary reads the runtime once built.
    built: list[Runtime] = []
    server = tracing = None
    try:
        tracing = Tracing.install(loaded, telemetry, tracer_provider)
        # Beside a borrowed provider eddie serves only when told to: that provider's exporters take its series out.
        serving = loaded.serve if loaded.serve is not None else provider is None
        if serving and telemetry.enabled and loaded.prometheus_enabled:

            def read_summary() -> dict[str, Any] | None:
                return dict(summary(built[0])) if built else None

            server = _serve(loaded, telemetry, read_summary, loaded.port if port is None else port)
    except Exception:
        if server is not None:
            server.close()
        telemetry.shutdown()
        if tracing is not None:
            tracing.shutdown()
        raise
    runtime = Runtime(loaded, telemetry, server, None, tracing)
    built.append(runtime)
    if server is not None:
        try:
            runtime.announce(int(server.port))
        except Exception:
            runtime.close()
            raise
    return runtime


def _serve(loaded: Settings, telemetry: Telemetry, read_summary: Any, port: int) -> MetricsServer:
    """The agent endpoint on `port`; with discovery on, a free one when that port is taken."""

    def on(port: int) -> MetricsServer:
        return MetricsServer(
            telemetry.registry, loaded.host, port, service_name=loaded.service_name, summary=read_summary
        )

    try:
        return on(port)
    except EddieOtelError:
        if loaded.discovery_dir is None or port == 0:
            raise
    # Discovery announces whatever port is bound, so another process on this port is no obstacle.
    server = on(0)
    logger.info(
        "eddie-otel: port %s is taken; serving metrics on port %s (announced in %s)",
        port,
        server.port,
        loaded.discovery_dir,
    )
    return server


# ------------------------------------------------------------------ identity and forks

_instance_id: str | None = None
_watching = False
# In a forked child, the parent's runtime until the child's own is built.
_inherited: Runtime | None = None


def instance_id() -> str:
    """This process's `service.instance.id`: one per process, a new one in a forked child."""
    global _instance_id
    if _instance_id is None:
        _instance_id = str(uuid.uuid4())
    return _instance_id


def _watch_forks() -> None:
    global _watching
    if not _watching and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        atexit.register(_withdraw_announcement)
        _watching = True


def _withdraw_announcement() -> None:
    """Remove this process's discovery file, if it announced one (at exit, at a signal, never raising)."""
    runtime = _runtime
    if runtime is not None and runtime.announcement is not None:
        runtime.announcement.remove()


# ------------------------------------------------------------------ withdrawing when the process ends
#
# A normal exit runs atexit. Two other ends of a process would leave its discovery file behind
# (Prometheus would then scrape a dead target until the next process or `doctor` removes it):
#
# - A multiprocessing child (fork and forkserver start methods) leaves with os._exit() once
#   Process.run() returns or raises: no atexit. Process._bootstrap runs multiprocessing's own
#   exit function first, though, which calls the finalizers registered in that child with an
#   exit priority (it clears those inherited from the parent before run()).
# - A signal whose action is the default one (SIGTERM, unless the application handles it; SIGINT
#   when set back to SIG_DFL) ends the process without running any Python code. Where the
#   application (or Python, for SIGINT's KeyboardInterrupt) has a handler, the process ends
#   through that handler's exit path, where atexit or the finalizer removes the file; removing it
#   at the signal would withdraw a process that may go on (a caught KeyboardInterrupt, a graceful
#   shutdown still serving), so such a handler is left alone.

_WITHDRAWN_ON = (signal.SIGTERM, signal.SIGINT)
# The disposition each signal had when eddie's handler replaced it (always SIG_DFL: see above).
_previous_handlers: dict[int, Any] = {}
_finalizer_pid: int | None = None


def _withdraw_when_ending() -> None:
    """Make sure this process's announcement is removed however it ends: called when announcing."""
    _finalize_in_multiprocessing_child()
    if threading.current_thread() is not threading.main_thread():
        return  # Python lets only the main thread set signal handlers.
    for signum in _WITHDRAWN_ON:
        if signal.getsignal(signum) is signal.SIG_DFL:
            _previous_handlers[signum] = signal.signal(signum, _withdraw_on_signal)


def _finalize_in_multiprocessing_child() -> None:
    global _finalizer_pid
    # A multiprocessing child has imported multiprocessing.util before its target runs; others need atexit only.
    if _finalizer_pid == os.getpid() or "multiprocessing.util" not in sys.modules:
        return
    from multiprocessing import util

    util.Finalize(None, _withdraw_announcement, exitpriority=0)
    _finalizer_pid = os.getpid()


def _withdraw_on_signal(signum: int, frame: FrameType | None) -> None:
    """Remove the announcement, then let the signal do what it did before: end the process, with its status."""
    _withdraw_announcement()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, previous)
    signal.raise_signal(signum)


def _restore_signals() -> None:
    """Give the signals eddie handles back their earlier disposition, unless the application has replaced it."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_previous_handlers.items()):
        if signal.getsignal(signum) is _withdraw_on_signal:
            signal.signal(signum, previous)
        del _previous_handlers[signum]


def _after_fork_in_child() -> None:
    """In a forked child: a new identity, fresh locks, and the parent's runtime set aside.

    Only the forking thread exists in the child, and other libraries' fork handlers may
    not have run yet, so nothing is built here: the child's own runtime is built from the
    parent's settings by its first recorded call (`current()`). The parent's endpoint is
    abandoned (its port released in the child, never shut down: its thread is not here).
    """
    global _lock, _runtime, _instance_id, _inherited
    _lock = threading.RLock()
    _instance_id = None
    parent, _runtime = _runtime, None
    after_fork_in_child()
    if parent is None:
        return
    parent.recorder.close()
    if parent.server is not None:
        parent.server.abandon()
    # The parent's counts are the parent's: nothing of them is exported from here.
    parent.telemetry.store.reset_after_fork()
    _inherited = parent


def _rebuild_inherited(*, quietly: bool = False) -> Runtime | None:
    """The forked child's own runtime, from the parent's settings (a free port if the parent served).

    `quietly` (a recorded call, not configure()): what fails is left out and said in one line.
    """
    global _inherited
    parent, _inherited = _inherited, None
    if parent is None:
        return None
    threads.quietly(threading.Thread(target=parent.close_in_child, name="eddie-otel-parent", daemon=True).start)
    provider = parent.telemetry.borrowed
    # The same settings (configure() with them again is a no-op), but the parent keeps its port.
    port = 0 if parent.server is not None else None
    if not quietly:
        return _build(parent.settings, provider, port=port)

    def build(announce: bool, serve: bool) -> Runtime:
        settings = parent.settings
        if not announce:
            settings = dataclasses.replace(settings, discovery_dir=None)
        if not serve:
            settings = dataclasses.replace(settings, serve=False, discovery_dir=None)
        return _build(settings, provider, port=port)

    return _degrading(build, "setting up recording in this forked child with its parent's settings")


def current() -> Runtime:
    """The configured runtime; configures from the environment on first use if nobody did.

    Never raises into the recorded call: see `_configure_from_environment`.
    """
    global _runtime
    runtime = _runtime
    if runtime is not None:
        return runtime
    with _lock:
        if _runtime is None and _inherited is not None:
            _runtime = _rebuild_inherited(quietly=True)
        if _runtime is None and (_gave_up or _switched_off()):
            # Off (disable(), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, or configuring from the environment
            # failed): decorated calls run, nothing is recorded, and nothing counts as configured.
            return _off()
        if _runtime is None:
            logger.info("eddie-otel: configure() was not called; configuring from the environment")
            return _configure_from_environment()
        return _runtime


# Whether configuring from the environment failed even without serving: recording stays off, not retried.
_gave_up = False
# The lines already said about configuring from the environment (each is said once per process).
_said: set[str] = set()


def _configure_from_environment() -> Runtime:
    """configure() for a recorded call when nobody called it: never raises, never leaves anything to retry.

    What cannot work is left out, and said once in one line (logger "eddie_otel", error level):
    a variable whose value cannot be read is ignored (its default is used, as OpenTelemetry SDKs
    do); a discovery directory that cannot be written, then a port that cannot be served, are done
    without; if recording still cannot be set up it stays off until configure() is called.
    """
    try:
        return configure()
    except Exception as error:
        failure: Exception = error
    environ = dict(os.environ)
    borrowing = _provider_to_borrow(None, environ, {}) is not None
    invalid = _invalid_variables(environ, skip=_SDK_VARIABLES if borrowing else frozenset())
    for name in invalid:
        del environ[name]
    without_discovery = {name: value for name, value in environ.items() if name != env.EDDIE_OTEL_DISCOVERY_DIR}

    def build(announce: bool, serve: bool) -> Runtime:
        return configure(environ=environ if announce else without_discovery, serve=None if serve else False)

    # With every variable readable, the first build is the configure() that just failed.
    doing = "configuring from the environment (configure() was not called)"
    return _degrading(build, doing, invalid, None if invalid else failure)


def _invalid_variables(environ: Mapping[str, str], skip: frozenset[str]) -> dict[str, str]:
    """Each OTEL_*/EDDIE_OTEL_* variable of `environ` whose value eddie-otel cannot read, with the reason."""
    found = {}
    for name, value in sorted(environ.items()):
        if name.startswith(("OTEL_", "EDDIE_OTEL_")) and name not in skip:
            try:
                Settings.load({name: value})
            except ConfigurationError as error:
                found[name] = str(error)
    return found


def _degrading(
    build: Callable[[bool, bool], Runtime],
    doing: str,
    invalid: Mapping[str, str] | None = None,
    failure: Exception | None = None,
) -> Runtime:
    """build(announce=True, serve=True), else without what fails; one error line says what, and what is left.

    `invalid`: the variables already left out (their defaults used), with why. `failure`: the
    error of the full build when it was already tried. Without announcing is tried when
    announcing failed, then without serving (nor announcing); else recording stays off.
    """
    global _gave_up
    problems = list((invalid or {}).values())
    defaults = ""
    if invalid:
        *others, last = invalid
        defaults = f"the defaults for {', '.join(others)} and {last}" if others else f"the default for {last}"
    if failure is None:
        try:
            runtime = build(True, True)
        except Exception as error:
            failure = error
        else:
            _say_once(doing, problems, f"recording with {defaults}")
            return runtime
    _note(problems, failure)
    fallbacks = ((False, True), (False, False)) if isinstance(failure, DiscoveryError) else ((False, False),)
    for announce, serve in fallbacks:
        try:
            runtime = build(announce, serve)
        except Exception as error:
            _note(problems, error)
            continue
        outcome = "serving metrics without announcing them" if serve else "recording without serving metrics"
        _say_once(doing, problems, f"{outcome}, with {defaults}" if defaults else outcome)
        return runtime
    _gave_up = True
    _say_once(doing, problems, "recording is off until configure() is called")
    return _off()


def _note(problems: list[str], error: Exception) -> None:
    reason = _one_line(error)
    if reason not in problems:
        problems.append(reason)


def _one_line(error: Exception) -> str:
    """An error as one line: eddie's own by their message, others by their type too."""
    text = " ".join(str(error).split())
    return text if isinstance(error, EddieOtelError) else f"{type(error).__name__}: {text}"


def _say_once(doing: str, problems: list[str], outcome: str) -> None:
    if not problems:
        return
    line = f"eddie-otel: {doing}: {'; '.join(problems)}; {outcome}"
    if line not in _said:
        _said.add(line)
        logger.error("%s", line)


# Set by disable() (the instrumentor's uninstrument): recording configures nothing until enable().
_disabled = False
# The name opentelemetry-instrument knows eddie-otel's instrumentor by.
INSTRUMENTATION_NAME = "eddie_otel"


_off_runtime: Runtime | None = None


def _off() -> Runtime:
    global _off_runtime
    if _off_runtime is None:
        _off_runtime = _build(Settings(sdk_disabled=True, serve=False), None)
    return _off_runtime


def _switched_off() -> bool:
    if _disabled:
        return True
    listed = os.environ.get(env.OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "")
    return INSTRUMENTATION_NAME in (name.strip() for name in listed.split(","))


def disable() -> None:
    """Stop recording: shut down, and let later calls run without recording or configuring until `enable()`."""
    global _disabled
    with _lock:
        _disabled = True
        _shutdown_locked()


def enable() -> None:
    """Undo `disable()`: the next recorded call (or `configure()`) sets eddie-otel up again."""
    global _disabled
    with _lock:
        if _disabled:
            _disabled = False
            _shutdown_locked()


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
    global _runtime, _inherited, _gave_up
    runtime, _runtime = _runtime, None
    # A forked child that never recorded has only its parent's runtime, which is not its to stop.
    _inherited = None
    _gave_up = False
    if runtime is not None:
        runtime.close()
        _restore_signals()


def reset() -> None:
    """Forget all state, as after a fresh import: what tests use between cases.

    Shuts down, and zeroes the series kept for borrowed providers, whose instruments
    outlive a shutdown (the SDK keeps them for the provider's life).
    """
    global _disabled
    with _lock:
        _disabled = False
        _shutdown_locked()
        _said.clear()
        forget_borrowed()
