"""Traces: the TracerProvider the decorators use, their spans, and the context across threads and processes.

`Tracing.install` decides once, at configure time, whether there are spans at all: a
TracerProvider given to `configure()`, else one already installed globally (used as
it is), else one built here when OTEL_TRACES_EXPORTER names an exporter; otherwise
None, and the decorators pay nothing for traces. The OpenTelemetry trace SDK and the
OTLP exporter are imported only when a provider is built here.

`propagate(fn)` carries the current context into another thread; `carrier()` writes it
as W3C `traceparent`/`tracestate` for another process, which `extract()` reads back.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eddie_otel import fallback
from eddie_otel._version import __version__
from eddie_otel.store import Exemplar
from eddie_otel.telemetry import own_provider, shutdown_within
from eddie_otel.threads import quietly

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from eddie_otel.config import Settings
    from eddie_otel.telemetry import Telemetry

__all__ = [
    "AGENT",
    "DEPTH",
    "ERROR_TYPE",
    "OPERATION",
    "OPERATION_NAME",
    "SCOPE_NAME",
    "STAGE",
    "Tracing",
    "carrier",
    "current_exemplar",
    "detach",
    "event",
    "exemplar",
    "extract",
    "fail",
    "propagate",
    "span_attributes",
    "span_name",
    "usage",
]

F = TypeVar("F", bound=Callable[..., Any])

SCOPE_NAME = "eddie_otel"
# The OpenTelemetry GenAI agent conventions: every task and chunk is an agent invocation.
OPERATION_NAME = "gen_ai.operation.name"
OPERATION = "invoke_agent"
AGENT = "gen_ai.agent.name"
ERROR_TYPE = "error.type"
STAGE = "eddie.stage"
DEPTH = "eddie.fallback.depth"

_W3C = TraceContextTextMapPropagator()
# Providers built here and shut down since: still installed globally (the API allows one
# installation per process), but dead, so a later configure() builds a fresh one.
_BUILT: weakref.WeakSet[Any] = weakref.WeakSet()


def span_name(agent: str | None) -> str:
    """The span name of a task or chunk on `agent`: `invoke_agent {agent}`, or `invoke_agent` without one."""
    return OPERATION if agent is None else f"{OPERATION} {agent}"


def span_attributes(stage: str, agent: str | None) -> dict[str, str]:
    """The attributes every span of a task or chunk with these labels starts with."""
    attributes = {OPERATION_NAME: OPERATION, STAGE: stage}
    if agent is not None:
        attributes[AGENT] = agent
    return attributes


class Tracing:
    """The tracer eddie-otel's spans come from, and the provider it built (None when it borrowed one)."""

    def __init__(
        self, tracer: Tracer, provider: Any = None, exemplar_filter: str = "trace_based", shutdown_seconds: float = 3
    ) -> None:
        self.tracer = tracer
        self.provider = provider
        # OTEL_METRICS_EXEMPLAR_FILTER, for the exemplars of eddie's own endpoint.
        self.exemplar_filter = exemplar_filter
        # EDDIE_OTEL_SHUTDOWN_TIMEOUT_SECONDS: the longest shutdown() waits for the built provider to flush.
        self.shutdown_seconds = shutdown_seconds
        # What the built provider exports through, for that warning: `traces (otlp)`.
        self.exported = "traces"

    @classmethod
    def install(cls, settings: Settings, telemetry: Telemetry, tracer_provider: Any = None) -> Tracing | None:
        """The tracing of a runtime: `tracer_provider`, the installed provider, one built here, or None (no spans)."""
        if not telemetry.enabled:
            return None
        if tracer_provider is not None:
            return cls(tracer_provider.get_tracer(SCOPE_NAME, __version__), None, settings.exemplar_filter)
        installed = trace.get_tracer_provider()
        borrowed = not isinstance(installed, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
        if borrowed and installed not in _BUILT:
            return cls(installed.get_tracer(SCOPE_NAME, __version__), None, settings.exemplar_filter)
        if not settings.trace_exporters:
            return None
        provider = _build_provider(settings.trace_exporters, telemetry.resource, settings.traces_protocol)
        own_provider(provider, _exported(settings.trace_exporters), settings.shutdown_timeout_seconds)
        if not borrowed:
            trace.set_tracer_provider(provider)
        _BUILT.add(provider)
        tracing = cls(
            provider.get_tracer(SCOPE_NAME, __version__),
            provider,
            settings.exemplar_filter,
            settings.shutdown_timeout_seconds,
        )
        tracing.exported = _exported(settings.trace_exporters)
        return tracing

    def shutdown(self) -> None:
        """Flush and stop the provider built here within `shutdown_seconds` (a borrowed one is left to its owner).

        The SDK's TracerProvider.shutdown() takes no timeout and waits as long as its
        exporters retry: it runs in a daemon thread, and what did not flush in time is
        said in one warning.
        """
        shutdown_within(self.release(), self.shutdown_seconds)

    def release(self) -> list[tuple[str, Any]]:
        """The provider built here, named, for a caller to shut down with others in one wait; forgotten here."""
        provider, self.provider = self.provider, None
        return [] if provider is None else [(self.exported, provider)]

    def start(self, name: str, attributes: Mapping[str, Any], parent: Context | None) -> tuple[Span, Context]:
        """A started INTERNAL span under `parent` (None: the current context), and the context it is current in."""
        span = self.tracer.start_span(name, parent, SpanKind.INTERNAL, attributes)
        return span, trace.set_span_in_context(span, parent)

    @contextmanager
    def remote(
        self,
        parent: Context,
        stage: str,
        agent: str | None,
        seconds: float,
        error_type: str | None,
        received_ns: int,
    ) -> Iterator[Span]:
        """A span of work measured elsewhere that ended at `received_ns` after `seconds`, current while recorded."""
        start = received_ns - int(seconds * 1e9)
        span = self.tracer.start_span(
            span_name(agent), parent, SpanKind.INTERNAL, span_attributes(stage, agent), start_time=start
        )
        if error_type is not None:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute(ERROR_TYPE, error_type)
        try:
            with trace.use_span(span, end_on_exit=False):
                yield span
        finally:
            span.end(end_time=received_ns)


def fail(span: Span, error: BaseException, error_type: str) -> None:
    """Mark `span` failed by `error`: status ERROR, `error.type`, and the exception recorded."""
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.set_attribute(ERROR_TYPE, error_type)
    span.record_exception(error)


def exemplar(span: Span, seconds: float, exemplar_filter: str = "trace_based") -> Exemplar | None:
    """An exemplar of `seconds` pointing at `span` when OTEL_METRICS_EXEMPLAR_FILTER lets it have one; else None.

    trace_based (the default): a sampled span; always_on: any span; always_off: never.
    """
    if exemplar_filter == "always_off":
        return None
    context = span.get_span_context()
    if not context.is_valid or (exemplar_filter == "trace_based" and not context.trace_flags.sampled):
        return None
    return Exemplar(seconds, time.time_ns(), context.trace_id, context.span_id)


def current_exemplar(seconds: float, exemplar_filter: str = "trace_based") -> Exemplar | None:
    """An exemplar of `seconds` pointing at the current span, as `exemplar` decides; else None."""
    return exemplar(trace.get_current_span(), seconds, exemplar_filter)


def event(name: str, attributes: Mapping[str, Any]) -> None:
    """Add the event `name` to the current span, when it is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)


def usage(span: Any, attributes: Mapping[str, int]) -> None:
    """Set a task's usage `attributes` (gen_ai.usage.*) on its `span`, while it is recording."""
    if isinstance(span, Span) and span.is_recording():
        span.set_attributes(attributes)


def detach(token: object) -> None:
    """Undo `opentelemetry.context.attach`, letting through an exception raised into it from outside.

    OpenTelemetry's `detach` catches and logs every Exception raised while it runs, so a signal
    handler's deadline landing there would never reach the application. With the default runtime
    context, the token `attach` returned is a `contextvars.Token`: resetting it through its own
    variable is the very step that `detach` takes, and one call, so a deadline lands before or after
    it, in eddie's code. A token of another runtime context goes to OpenTelemetry's `detach`.
    """
    if isinstance(token, contextvars.Token):
        token.var.reset(token)
    else:
        otel_context.detach(token)  # type: ignore[arg-type]


def propagate(fn: F) -> F:
    """`fn` that runs in the context current now, wherever it is called: for thread pools and callbacks.

    In a task that was split, the context carries the time of its last split: a chunk run by `fn`
    measures its queue wait from it, and counts as fallback work of the task's stage.
    """
    captured = fallback.snapshot(fallback.current())

    @functools.wraps(fn)
    def in_context(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(captured)
        try:
            return fn(*args, **kwargs)
        finally:
            detach(token)

    return in_context  # type: ignore[return-value]


def carrier() -> dict[str, str]:
    """The current trace context as W3C `traceparent` (and `tracestate`) headers, to send with work.

    In a task that was split, also `eddie-split`: the time of its last split and its stage, which a
    `@chunk(carrier=...)` in another process reads for its queue wait and its fallback work.
    """
    headers: dict[str, str] = {}
    _W3C.inject(headers)
    split = fallback.header()
    if split is not None:
        headers[split[0]] = split[1]
    return headers


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The context whose parent is the span named by W3C `traceparent` in `headers`; None when there is none."""
    if not headers:
        return None
    found = _W3C.extract({str(key).lower(): value for key, value in headers.items()})
    if not trace.get_current_span(found).get_span_context().is_valid:
        return None
    return found


def _exported(exporters: tuple[str, ...]) -> str:
    return f"traces ({', '.join(exporters)})"


def _build_provider(exporters: tuple[str, ...], resource: Resource, protocol: str) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    from eddie_otel.telemetry import otlp_exporter

    # Shut down at exit by eddie, within EDDIE_OTEL_SHUTDOWN_TIMEOUT_SECONDS (telemetry.own_provider), not by the SDK.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for name in exporters:
        if name == "otlp":
            exporter = otlp_exporter("trace", protocol)()
            # The processor starts its export thread as it is made.
            provider.add_span_processor(quietly(functools.partial(BatchSpanProcessor, exporter)))
        elif name == "console":
            # Each span as it ends: the console exporter is for watching a run.
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
    return provider
