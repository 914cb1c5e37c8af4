"""The decorators' machinery: one start/finish shared by the wrappers of the four function kinds.

`decorator(is_task, stage, agent, recorder)` makes @task or @chunk; `recorder` is
called on each call to find the Recorder to record into (the configured runtime's
for `eddie_otel.task`, a fixed one for `Recorder.task`). A failure of the
instrumentation is logged (once with its traceback) and never reaches the caller; an
exception raised into the wrapper from outside, such as a signal handler's deadline,
reaches the caller unchanged and is recorded as the function's own would be
(`interrupts.raised_into` tells the two apart).

When the runtime has tracing (`Site.tracing`), each call is also a span, current while
the function runs (a generator's, while each of its steps runs), its parent the
current context or the one `carrier(*args, **kwargs)` names. Without tracing the
only cost is one attribute check on start and one on finish.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import context as otel_context

from eddie_otel import fallback
from eddie_otel import tracing as traces
from eddie_otel.labels import check_label_value
from eddie_otel.recording import checks
from eddie_otel.recording.interrupts import raised_into
from eddie_otel.recording.outcome import UNKNOWN, Site, reason_of
from eddie_otel.store import Cell

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

    from eddie_otel.recording.recorder import Recorder

__all__ = ["Carrier", "Depth", "Label", "QueuedSince", "decorator"]

logger = logging.getLogger("eddie_otel")

F = TypeVar("F", bound=Callable[..., Any])
Label = str | Callable[..., str]
# The fallback depth of a chunk, or a callable receiving the call's arguments that returns it.
Depth = int | Callable[..., int]
# A callable receiving the call's arguments that returns the W3C headers of the parent span (`carrier()`'s).
Carrier = Callable[..., Mapping[str, str] | None]
# When a chunk was queued (Unix seconds): a number, or a callable receiving the call's arguments that returns one.
QueuedSince = float | Callable[..., float]
_perf_counter = time.perf_counter
# Label values kept per decorated function with callable labels; the label caps bound what they map to.
_MAX_SITES = 1024


class _Span:
    """The span of one traced call, and the context token to detach when it is current."""

    __slots__ = ("context", "span", "token")

    def __init__(self, span: Span, context: Context, token: object) -> None:
        self.span = span
        self.context = context
        self.token = token


class _Call(fallback.Mark):
    """One decorated call: its site, when it started, its span; `done` as the store set it.

    A task's call is also its fallback mark (`fallback.Mark`: stage, split, ...), current in the
    OpenTelemetry context while it runs: `token` detaches it (when not traced, else its span's
    does), `steps` is what a generator's steps run in. A fallback chunk's call holds its
    fallback_chunk_seconds_total cell in `fallback`.

    No __init__ (one is made per call, on the hot path): `start` gives every field its value first.
    """

    __slots__ = ("done", "fallback", "site", "started", "steps", "token", "traced")
    done: bool
    site: Site | None
    started: float
    traced: _Span | None
    token: object
    steps: Context | None
    fallback: Cell | None

    @property
    def context(self) -> Context | None:
        """The context a generator's steps run in (its span's when traced); None when there is none."""
        traced = self.traced
        return getattr(self, "steps", None) if traced is None else traced.context


def _blank(call: _Call) -> _Call:
    """`call` with every field at its value before a start (for a call interrupted before `start` ran)."""
    call.done = call.split = False
    call.site = call.traced = call.token = call.fallback = None
    call.started = 0.0
    return call


class _Instrumentation:
    """The start/finish logic shared by every wrapper of one decorated function."""

    __slots__ = (
        "agent",
        "carrier",
        "depth",
        "is_task",
        "logged",
        "name",
        "plain",
        "queued_since",
        "recorder",
        "site",
        "sites",
        "stage",
        "static",
    )

    def __init__(
        self,
        is_task: bool,
        stage: Label,
        agent: Label | None,
        name: str,
        recorder: Callable[[], Recorder],
        depth: Depth | None = None,
        carrier: Carrier | None = None,
        queued_since: QueuedSince | None = None,
    ) -> None:
        self.is_task = is_task
        self.stage = stage
        self.agent = agent
        self.name = name
        self.recorder = recorder
        self.depth = depth
        self.carrier = carrier
        self.queued_since = queued_since
        self.static = not callable(stage) and not callable(agent)
        # A task with no carrier: untraced, its start is its running count and its mark, nothing more.
        self.plain = is_task and carrier is None
        # With static labels, the one site, checked against the current recorder on each call.
        self.site: Site | None = None
        # With callable labels, the site of each pair of values the callables gave, checked and
        # capped once: a call then pays the callables and one lookup.
        self.sites: dict[tuple[object, object], Site] = {}
        # Whether a failure of the instrumentation was logged with its traceback (later ones are debug lines).
        self.logged = False

    def _value(self, name: str, label: Label | None, args: Any, kwargs: Any) -> object:
        """What a label is for this call: the string, or what its callable returns (None if it fails)."""
        if not callable(label):
            return label
        try:
            return label(*args, **kwargs)
        except Exception as error:
            if raised_into(error):
                raise
            logger.warning("eddie-otel: %s label of %s: %s; recorded as %r", name, self.name, error, UNKNOWN)
            return None

    def _checked(self, recorder: Recorder, name: str, value: object) -> str:
        try:
            check_label_value(name, value)
        except ValueError as error:
            if value is not None:
                logger.warning("eddie-otel: %s label of %s: %s; recorded as %r", name, self.name, error, UNKNOWN)
            return UNKNOWN
        return recorder.bound(name, str(value))

    def _site(self, recorder: Recorder, stage: object, agent: object) -> Site | None:
        """The prepared site for these label values (checked, then capped)."""
        if not recorder.enabled:
            return None
        checked_agent = None if self.agent is None else self._checked(recorder, "agent", agent)
        site = recorder.site(self.is_task, self._checked(recorder, "stage", stage), checked_agent)
        site.prepare()
        return site

    def _resolve(self, args: Any, kwargs: Any) -> Site | None:
        recorder = self.recorder()
        if self.static:
            self.site = self._site(recorder, self.stage, self.agent)
            return self.site
        stage = self._value("stage", self.stage, args, kwargs)
        agent = self._value("agent", self.agent, args, kwargs)
        try:
            site = self.sites.get((stage, agent))
        except TypeError:  # a callable gave something unhashable: never a valid label
            return self._site(recorder, stage, agent)
        if site is None or not site.live or site.recorder is not recorder:
            site = self._site(recorder, stage, agent)
            if site is not None:
                if len(self.sites) >= _MAX_SITES:
                    self.sites.clear()
                self.sites[(stage, agent)] = site
        return site

    def start(self, call: _Call, args: Any, kwargs: Any, attach: bool = True) -> None:
        """Count `call` as running and open its span when tracing (current when `attach`).

        An exception raised into it from outside (a signal handler's) goes to the caller, who
        finishes the call with it; eddie's own failure is logged and the call goes on.
        """
        call.done = call.split = False
        call.site = call.traced = call.token = call.fallback = None
        try:
            site = self.site
            # A site stays live until its runtime closes (or its agent is forgotten): no lookup per call.
            if site is None or not site.live:
                site = self._resolve(args, kwargs)
                if site is None:
                    return
            now = call.started = _perf_counter()
            call.site = site
            if now >= site.history.next_tick:
                # The coarse clocks (the store's, and the Unix time last-seen gauges take) move on here too.
                site.advance(now)
            active = site.active
            if active is not None:
                site.store.start(active, call, site.seen)
            if not (self.plain and attach and site.tracing is None):
                self._begin(site, call, args, kwargs, attach)
            if self.is_task:
                # The task's mark: a split inside marks it.
                call.stage = site.stage
                if attach:
                    # A plain call or a coroutine: the mark in eddie's own variable, one step to set and reset.
                    current = fallback.CURRENT
                    call.token = current.set((call, current.get()))  # fallback.enter_task, inline
        except Exception as error:
            if raised_into(error):
                raise
            self._failed("start", error)

    def _begin(self, site: Site, call: _Call, args: Any, kwargs: Any, attach: bool) -> None:
        """What a start takes beyond the running count and a plain task's mark: the carrier's parent,
        a chunk's queue wait and fallback context, the span, and the context a generator's steps run in."""
        parent = None
        headers = None
        if self.carrier is not None:
            headers = self._headers(args, kwargs)
            if site.tracing is not None:
                parent = traces.extract(headers)
        context: Context | None = None
        if self.is_task:
            if not attach:
                # A generator's steps run in a context of their own, which carries the task's mark.
                base = parent if parent is not None else fallback.current()
                context = otel_context.set_value(fallback.TASK, call, base)
        else:
            context = self._chunk(site, call, headers, parent, args, kwargs)
        if site.tracing is not None:
            traced = call.traced = self._open(site, args, kwargs, attach, context or parent)
            if traced is not None and self.is_task:
                call.span = traced.span
        elif context is not None:
            # Untraced, a chunk's context (or a generator's steps') is eddie's own variable's.
            if attach:
                call.token = fallback.enter(context)
            else:
                call.steps = context

    def _failed(self, what: str, error: Exception) -> None:
        """Log a failure of the instrumentation: the first with its traceback, the others as debug lines."""
        if self.logged:
            logger.debug("eddie-otel: could not %s recording %s: %r", what, self.name, error)
            return
        self.logged = True
        logger.error("eddie-otel: could not %s recording %s", what, self.name, exc_info=error)

    def _headers(self, args: Any, kwargs: Any) -> Mapping[str, str] | None:
        """What the call's `carrier` returns (None when it fails: the span's parent is then the current one)."""
        if self.carrier is None:
            return None
        try:
            return self.carrier(*args, **kwargs)
        except Exception as error:
            if raised_into(error):
                raise
            logger.warning("eddie-otel: carrier of %s: %s; the span's parent is the current one", self.name, error)
            return None

    def _chunk(
        self, site: Site, call: _Call, headers: Mapping[str, str] | None, parent: Context | None, args: Any, kwargs: Any
    ) -> Context | None:
        """A chunk starts: its queue wait, and, for a chunk created by a split, the context it runs in.

        A chunk is a fallback chunk of a stage when the `eddie-split` header of its carrier says so,
        or when its context's task is split; it waited since that split (the time `propagate`
        snapshotted, else the task's last split), or since `queued_since` when that is given.
        """
        stage = None
        since = None
        remote = fallback.from_headers(headers) if headers else None
        if remote is not None:
            since, stage = remote
        else:
            mark = fallback.task_mark(parent)
            if mark is not None and mark.split:
                stage = mark.stage
                since = fallback.split_at(parent)
                if since is None:
                    since = mark.split_at
        if self.queued_since is not None:
            since = self._queued_since(args, kwargs)
        if since is not None:
            waited = time.time() - since
            if math.isfinite(waited):
                # A clock a little ahead where the split happened is not a negative wait.
                site.waited(max(0.0, waited))
        if stage is None:
            return None
        call.fallback = site.fallback_seconds(stage)
        context = otel_context.set_value(fallback.CHUNK, stage, parent if parent is not None else fallback.current())
        if remote is not None:
            # A chunk from another process: its own mark of the split, for the chunks and usage inside it.
            context = otel_context.set_value(fallback.TASK, fallback.new_mark(stage, since), context)
        return context

    def _queued_since(self, args: Any, kwargs: Any) -> float | None:
        """When the call's chunk was queued (Unix seconds), from `queued_since`; None when that fails."""
        queued = self.queued_since
        try:
            value = queued(*args, **kwargs) if callable(queued) else queued
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"queued_since must give a finite Unix time, not {value!r}")
            return float(value)
        except Exception as error:
            if raised_into(error):
                raise
            logger.warning("eddie-otel: queued_since of %s: %s; no queue wait recorded", self.name, error)
            return None

    def _open(self, site: Site, args: Any, kwargs: Any, attach: bool, parent: Context | None) -> _Span | None:
        tracing = site.tracing
        if tracing is None:
            return None
        attributes: dict[str, Any] = site.span_attributes
        if self.depth is not None:
            try:
                depth = self.depth(*args, **kwargs) if callable(self.depth) else self.depth
                attributes = {**attributes, traces.DEPTH: int(depth)}
            except Exception as error:
                if raised_into(error):
                    raise
                logger.warning("eddie-otel: depth of %s: %s; the span has no depth", self.name, error)
        try:
            span, context = tracing.start(site.span_name, attributes, parent)
        except Exception as error:
            if raised_into(error):
                raise
            logger.exception("eddie-otel: could not start the span of %s", self.name)
            return None
        return _Span(span, context, otel_context.attach(context) if attach else None)

    def finish(self, call: _Call | None, error: BaseException | None) -> None:
        """Record the end of `call`: a success when `error` is None; its span ends too.

        Recorded once: `call.done` is set by the store with the counts. An exception raised
        into this from outside (a signal handler's) reaches the caller, and the call is
        recorded as ending with it unless its counts were already made. One raised into the
        wrapper before the call had its site (None: before its record was even made) is
        recorded too where the labels are static.
        """
        if call is None:
            call = _blank(_Call())
        try:
            site = call.site
        except AttributeError:  # interrupted before `start` gave the call its fields
            site = _blank(call).site
        if site is None:
            site = self._interrupted_early(call, error)
        if site is None:
            return
        if call.done:
            # Finished again from the handler of an exception raised into the first finish after the
            # call was counted: it may not have left its running count yet.
            site.left(call)
            return
        try:
            now = _perf_counter()
            token = call.token
            if token is not None:  # _unmark(call), inline on the hot path
                call.token = None
                fallback.CURRENT.reset(token)  # type: ignore[arg-type]
            traced = call.traced
            if traced is not None:
                self._close(site, call, now, traced, error)
            elif error is None:
                site.end(now - call.started, None, False, now, None, None, call, call.split, call.fallback)
            else:
                reason, timed_out = reason_of(error)
                site.end(now - call.started, reason, timed_out, now, None, None, call, call.split, call.fallback)
        except Exception as raised:
            if not raised_into(raised):
                self._failed("finish", raised)
                return
            if not call.done:
                now = _perf_counter()
                reason, timed_out = reason_of(raised)
                site.end(now - call.started, reason, timed_out, now, None, None, call, call.split, call.fallback)
            # Raised before the task's mark (or a chunk's context) was undone: undone here, or it
            # would stay current in the caller's context after the call.
            self._unmark(call)
            raise

    def _unmark(self, call: _Call) -> None:
        """Undo what `start` made current in eddie's own variable, if it still is (once, whoever comes first)."""
        token = call.token
        if token is None:
            return
        call.token = None
        try:
            fallback.CURRENT.reset(token)  # type: ignore[arg-type]
        except Exception as error:
            if raised_into(error):
                raise
            self._failed("finish", error)

    def _interrupted_early(self, call: _Call, error: BaseException | None) -> Site | None:
        """The site of a call interrupted from outside before `start` gave it one (static labels only)."""
        if error is None or not self.static or not raised_into(error):
            return None
        site = self.site
        if site is None or not site.live:
            try:
                site = self._resolve((), {})
            except Exception:
                return None
        if site is not None:
            call.started = getattr(call, "started", 0.0) or _perf_counter()
            call.site = site
        return site

    def _close(self, site: Site, call: _Call, now: float, traced: _Span, error: BaseException | None) -> None:
        span = traced.span
        seconds = now - call.started
        kept = site.tracing.exemplar_filter if site.tracing is not None else "always_off"
        try:
            if error is None:
                exemplar = traces.exemplar(span, seconds, kept)
                site.end(seconds, None, False, now, exemplar, traced.context, call, call.split, call.fallback)
            else:
                reason, timed_out = reason_of(error)
                traces.fail(span, error, reason if timed_out else type(error).__name__)
                exemplar = traces.exemplar(span, seconds, kept)
                site.end(
                    seconds,
                    reason,
                    timed_out,
                    now,
                    exemplar,
                    traced.context,
                    call,
                    call.split,
                    call.fallback,
                )
        finally:
            span.end()
            if traced.token is not None:
                traces.detach(traced.token)


def _enter(call: _Call, context: Context) -> Any:
    """Make `context` current for a step of `call`: in OpenTelemetry's context when traced, else in eddie's own."""
    return fallback.enter(context) if call.traced is None else otel_context.attach(context)


def _leave(call: _Call, token: Any) -> None:
    """Undo `_enter`."""
    if call.traced is None:
        fallback.leave(token)
    else:
        traces.detach(token)


def _stepped(inner: Generator[Any, Any, Any], call: _Call, context: Context) -> Generator[Any, Any, Any]:
    """Delegate to `inner` as `yield from` would, running each of its steps in `context`."""
    step: Callable[[Any], Any] = inner.send
    argument: Any = None
    while True:
        attached = _enter(call, context)
        try:
            item = step(argument)
        except StopIteration as stop:
            return stop.value
        finally:
            _leave(call, attached)
        try:
            argument = yield item
            step = inner.send
        except GeneratorExit:
            inner.close()
            raise
        except BaseException as thrown:
            step, argument = inner.throw, thrown


def _wrap(instrumentation: _Instrumentation, fn: F) -> F:
    # Each wrapper makes its call record, starts and finishes it inside one `try`: an exception
    # raised into the wrapper at any point (a signal handler's), the start and finish included,
    # reaches the caller, and `finish` in the handler records the call once, as it ended for the
    # caller (a call whose counts were made is not counted again).
    # An early close of a generator (GeneratorExit) ends it as a success.
    start, finish = instrumentation.start, instrumentation.finish

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            call = None
            try:
                call = _Call()
                # Not current across yields: the caller's code runs there. Each step is run in the context.
                start(call, args, kwargs, False)
                context = call.context
                inner = fn(*args, **kwargs)
                # Delegate as `yield from` would: values sent and exceptions thrown reach `inner`.
                step: Callable[[Any], Any] = inner.asend
                argument: Any = None
                while True:
                    attached = None if context is None else _enter(call, context)
                    try:
                        item = await step(argument)
                    except StopAsyncIteration:
                        break
                    finally:
                        if attached is not None:
                            _leave(call, attached)
                    try:
                        argument = yield item
                        step = inner.asend
                    except GeneratorExit:
                        await inner.aclose()
                        raise
                    except BaseException as thrown:
                        step, argument = inner.athrow, thrown
                finish(call, None)
            except GeneratorExit:
                finish(call, None)
                raise
            except BaseException as error:
                finish(call, error)
                raise

        return cast(F, async_gen_wrapper)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            call = None
            try:
                call = _Call()
                start(call, args, kwargs, False)
                context = call.context
                if context is None:
                    result = yield from fn(*args, **kwargs)
                else:
                    result = yield from _stepped(fn(*args, **kwargs), call, context)
                finish(call, None)
            except GeneratorExit:
                finish(call, None)
                raise
            except BaseException as error:
                finish(call, error)
                raise
            return result

        return cast(F, gen_wrapper)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = None
            try:
                call = _Call()
                start(call, args, kwargs)
                result = await fn(*args, **kwargs)
                finish(call, None)
            except BaseException as error:
                finish(call, error)
                raise
            return result

        return cast(F, async_wrapper)

    # The plain call is the hot path: no context manager object (a tenth of the overhead, `make bench`).
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = None
        try:
            call = _Call()
            start(call, args, kwargs)
            result = fn(*args, **kwargs)
            finish(call, None)
        except BaseException as error:
            finish(call, error)
            raise
        return result

    return cast(F, wrapper)


def decorator(
    is_task: bool,
    stage: Label,
    agent: Label | None,
    recorder: Callable[[], Recorder],
    *,
    depth: Depth | None = None,
    carrier: Carrier | None = None,
    queued_since: QueuedSince | None = None,
) -> Callable[[F], F]:
    """@task (`is_task`) or @chunk with these labels, recording into `recorder()` on each call.

    `depth` is a chunk's fallback depth (its span's `eddie.fallback.depth`); `carrier` returns the
    W3C headers of the span the call's span is a child of (else the current span), and of the
    split that created a chunk; `queued_since` is when a chunk was queued (its queue wait's start).
    """
    if depth is not None and not callable(depth) and (isinstance(depth, bool) or not isinstance(depth, int)):
        raise ValueError(f"depth must be an integer or a callable, not {depth!r}")
    if carrier is not None and not callable(carrier):
        raise ValueError(f"carrier must be a callable returning headers, not {carrier!r}")
    if queued_since is not None and not callable(queued_since):
        checks.unix_time("queued_since", queued_since)
    for argument, value in (("stage", stage), ("agent", agent)):
        if value is not None and not callable(value):
            check_label_value(argument, value)

    def decorate(fn: F) -> F:
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        return _wrap(_Instrumentation(is_task, stage, agent, name, recorder, depth, carrier, queued_since), fn)

    return decorate
