"""`threads.quietly`: what it starts keeps the application's signals blocked; the caller's mask comes back."""

from __future__ import annotations

import signal
import threading

import pytest

from eddie_otel.threads import BLOCKED, quietly


def _mask() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, ()))


def test_a_thread_started_quietly_blocks_the_signals_and_the_caller_keeps_its_mask() -> None:
    before = _mask()
    seen: list[set[int]] = []
    thread = threading.Thread(target=lambda: seen.append(_mask()))
    quietly(thread.start)
    thread.join(5)
    assert _mask() == before
    assert seen[0] >= BLOCKED
    assert {int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGALRM)} <= BLOCKED
    # Faults stay with the thread that causes them.
    assert not {int(signal.SIGSEGV), int(signal.SIGBUS), int(signal.SIGFPE)} & BLOCKED


def test_the_mask_comes_back_when_what_runs_quietly_fails() -> None:
    before = _mask()

    def fails() -> None:
        assert _mask() >= BLOCKED
        raise RuntimeError("can't start a thread")

    with pytest.raises(RuntimeError, match="can't start a thread"):
        quietly(fails)
    assert _mask() == before


def test_a_signal_that_arrives_meanwhile_is_handled_after(monkeypatch: pytest.MonkeyPatch) -> None:
    handled: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(signum))
    try:

        def meanwhile() -> int:
            signal.raise_signal(signal.SIGUSR1)
            return len(handled)

        assert quietly(meanwhile) == 0
        assert handled == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
