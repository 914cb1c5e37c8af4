"""eddie-otel's threads never take a signal meant for the application.

A signal sent to the process (Ctrl-C's SIGINT, SIGTERM, a SIGALRM deadline) is delivered to
one of its threads that does not block it. Python runs the handler in the main thread, but only
when the main thread next runs Python code: if the kernel picked one of eddie's threads while
the main thread waits in a system call (`time.sleep`, a socket read), the handler, and the
application's Ctrl-C or deadline, wait with it. So every thread eddie starts, and every thread
the OpenTelemetry SDK starts for eddie (a periodic reader's, a batch span processor's), blocks
those signals, and the kernel delivers them to a thread that acts on them.

A thread inherits the signal mask of the thread that starts it: `quietly(fn)` runs `fn` (which
starts the thread, or builds what starts one) with those signals blocked in the calling thread,
then restores its mask; a signal that arrived meanwhile is delivered then. Signals raised by a
fault (SIGSEGV, SIGBUS, SIGFPE, ...) are never blocked: they belong to the thread that caused
them. Where threads have no signal mask (Windows), `quietly(fn)` is `fn()`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TypeVar

__all__ = ["BLOCKED", "quietly"]

T = TypeVar("T")

# The signals an application handles (or dies of) that a thread of eddie's must leave to the others.
BLOCKED: frozenset[int] = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGWINCH")
    if hasattr(signal, name)
)


def quietly(fn: Callable[[], T]) -> T:
    """`fn()`, with `BLOCKED` blocked in this thread meanwhile: the threads it starts keep them blocked."""
    if not hasattr(signal, "pthread_sigmask"):
        return fn()
    # Read first, changing nothing: an exception raised into this line leaves the mask as it was.
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)
        return fn()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
