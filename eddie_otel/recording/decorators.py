"""The decorators' machinery: one start/finish shared by the wrappers of the four function kinds.

`decorator(is_task, stage, agent, recorder)` makes @task or @chunk; `recorder` is
called on each call to find the Recorder to record into (the configured runtime's
for `eddie_otel.task`, a fixed one for `Recorder.task`). A failure inside the
instrumentation is logged and never reaches the caller.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from eddie_otel.labels import check_label_value
from eddie_otel.recording.outcome import UNKNOWN, Site, reason_of

if TYPE_CHECKING:
    from eddie_otel.recording.recorder import Recorder

__all__ = ["Label", "decorator"]

logger = logging.getLogger("eddie_otel")

F = TypeVar("F", bound=Callable[..., Any])
Label = str | Callable[..., str]
_perf_counter = time.perf_counter


class _Instrumentation:
    """The start/finish logic shared by every wrapper of one decorated function."""

    __slots__ = ("agent", "is_task", "name", "recorder", "site", "stage", "static")

    def __init__(
        self, is_task: bool, stage: Label, agent: Label | None, name: str, recorder: Callable[[], Recorder]
    ) -> None:
        self.is_task = is_task
        self.stage = stage
        self.agent = agent
        self.name = name
        self.recorder = recorder
        self.static = not callable(stage) and not callable(agent)
        # With static labels, the one site, checked against the current recorder on each call.
        self.site: Site | None = None

    def _label(self, recorder: Recorder, name: str, label: Label, args: Any, kwargs: Any) -> str:
        try:
            value = label(*args, **kwargs) if callable(label) else label
            check_label_value(name, value)
        except Exception as error:
            logger.warning("eddie-otel: %s label of %s: %s; recorded as %r", name, self.name, error, UNKNOWN)
            return UNKNOWN
        return recorder.bound(name, value)

    def _resolve(self, recorder: Recorder, args: Any, kwargs: Any) -> Site | None:
        if not recorder.enabled:
            return None
        stage = self._label(recorder, "stage", self.stage, args, kwargs)
        agent = None if self.agent is None else self._label(recorder, "agent", self.agent, args, kwargs)
        site = recorder.site(self.is_task, stage, agent)
        if self.static:
            self.site = site
        return site

    def start(self, args: Any, kwargs: Any) -> tuple[Site, float] | None:
        try:
            recorder = self.recorder()
            site = self.site
            if site is None or site.recorder is not recorder:
                site = self._resolve(recorder, args, kwargs)
                if site is None:
                    return None
            site.begin()
            return site, _perf_counter()
        except Exception:
            logger.exception("eddie-otel: could not start recording %s", self.name)
            return None

    def finish(self, token: tuple[Site, float] | None, error: BaseException | None) -> None:
        if token is None:
            return
        try:
            site, started = token
            now = _perf_counter()
            if error is None:
                site.end(now - started, None, False, True, now)
            else:
                reason, timed_out = reason_of(error)
                site.end(now - started, reason, timed_out, True, now)
        except Exception:
            logger.exception("eddie-otel: could not finish recording %s", self.name)


class _Recording:
    """One call being recorded: started on creation, finished on exit.

    The generator wrappers run inside one of these; the plain wrappers inline the same
    start/finish. An early close of a generator (GeneratorExit) ends it as a success.
    """

    __slots__ = ("instrumentation", "token")

    def __init__(self, instrumentation: _Instrumentation, args: Any, kwargs: Any) -> None:
        self.instrumentation = instrumentation
        self.token = instrumentation.start(args, kwargs)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if error is not None and isinstance(error, GeneratorExit):
            error = None
        self.instrumentation.finish(self.token, error)


def _wrap(instrumentation: _Instrumentation, fn: F) -> F:
    start, finish = instrumentation.start, instrumentation.finish

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            with _Recording(instrumentation, args, kwargs):
                inner = fn(*args, **kwargs)
                # Delegate as `yield from` would: values sent and exceptions thrown reach `inner`.
                step: Callable[[Any], Any] = inner.asend
                argument: Any = None
                while True:
                    try:
                        item = await step(argument)
                    except StopAsyncIteration:
                        return
                    try:
                        argument = yield item
                        step = inner.asend
                    except GeneratorExit:
                        await inner.aclose()
                        raise
                    except BaseException as thrown:
                        step, argument = inner.athrow, thrown

        return cast(F, async_gen_wrapper)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            with _Recording(instrumentation, args, kwargs):
                return (yield from fn(*args, **kwargs))

        return cast(F, gen_wrapper)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            token = start(args, kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as error:
                finish(token, error)
                raise
            finish(token, None)
            return result

        return cast(F, async_wrapper)

    # The plain call is the hot path: the same start/finish as _Recording, without
    # the cost of a context manager object (a tenth of the overhead, `make bench`).
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = start(args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            finish(token, error)
            raise
        finish(token, None)
        return result

    return cast(F, wrapper)


def decorator(is_task: bool, stage: Label, agent: Label | None, recorder: Callable[[], Recorder]) -> Callable[[F], F]:
    """@task (`is_task`) or @chunk with these labels, recording into `recorder()` on each call."""
    for argument, value in (("stage", stage), ("agent", agent)):
        if value is not None and not callable(value):
            check_label_value(argument, value)

    def decorate(fn: F) -> F:
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        return _wrap(_Instrumentation(is_task, stage, agent, name, recorder), fn)

    return decorate
