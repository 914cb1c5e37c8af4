"""Telling eddie-otel's own failures from exceptions raised into its code from outside.

A Python signal handler runs wherever the main thread happens to be, eddie's start
and finish code included. A deadline done with SIGALRM whose handler raises
`TimeoutError`, or any exception such a handler raises, is the application's, not a
failure of the instrumentation: it must reach the caller unchanged. The two are told
apart by where the exception was raised, not by its type: one raised in a frame of a
signal handler installed now (or in a function that handler called) came from outside;
`KeyboardInterrupt`, `SystemExit` and other non-`Exception`s always do. Everything else
raised while eddie records is eddie's own failure.
"""

from __future__ import annotations

import signal
from types import CodeType

__all__ = ["raised_into"]


def _code(handler: object) -> CodeType | None:
    """The code object a signal handler runs first: a function's, a method's, a partial's or a callable's."""
    # A callable object runs its class's __call__ (looked up on the class, as a call does).
    called = vars(type(handler)).get("__call__")
    for candidate in (handler, getattr(handler, "__func__", None), getattr(handler, "func", None), called):
        code = getattr(candidate, "__code__", None)
        if isinstance(code, CodeType):
            return code
    return None


def _handler_codes() -> set[CodeType]:
    codes = set()
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if callable(handler):
            code = _code(handler)
            if code is not None:
                codes.add(code)
    return codes


def raised_into(error: BaseException) -> bool:
    """Whether `error` was raised into eddie's code from outside (a signal handler's, or not an `Exception`).

    Read only on the failure path: it looks at the installed signal handlers then.
    """
    if not isinstance(error, Exception):
        return True
    traceback = error.__traceback__
    if traceback is None:
        return False
    handlers = _handler_codes()
    while traceback is not None:
        if traceback.tb_frame.f_code in handlers:
            return True
        traceback = traceback.tb_next
    return False
