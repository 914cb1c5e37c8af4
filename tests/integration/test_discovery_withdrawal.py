"""Every process that announced itself is unannounced when it ends: exit, os._exit in children, signals.

Real processes: multiprocessing children (fork, forkserver), and interpreters sent SIGTERM and
SIGINT with and without a handler of the application's.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import eddie_otel
from eddie_otel import runtime
from eddie_otel.discovery import is_stale
from tests.support.helpers import wait_until


def announced(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.json"))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EDDIE_OTEL_"))}
    return {**env, **extra}


# ------------------------------------------------------------------ multiprocessing children


def _announce_and_leave(directory: str, stay: bool) -> None:
    eddie_otel.configure(port=0, discovery_dir=directory)
    eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)
    if stay:
        time.sleep(60)


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_multiprocessing_child_that_returns_is_unannounced(method: str, tmp_path: Path) -> None:
    # The parent announces too: a child's exit withdraws the child's file, never the parent's.
    eddie_otel.configure(port=0, discovery_dir=str(tmp_path))
    parent = announced(tmp_path)
    assert len(parent) == 1
    context = multiprocessing.get_context(method)
    children = [context.Process(target=_announce_and_leave, args=(str(tmp_path), False)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        # Process._bootstrap leaves with os._exit(): no atexit ran in the child.
        assert child.exitcode == 0
    assert announced(tmp_path) == parent


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_multiprocessing_child_terminated_is_unannounced(method: str, tmp_path: Path) -> None:
    context = multiprocessing.get_context(method)
    child = context.Process(target=_announce_and_leave, args=(str(tmp_path), True))
    child.start()
    try:
        wait_until(lambda: len(announced(tmp_path)) == 1, 60, "the child did not announce itself")
        child.terminate()  # SIGTERM, whose action is the default one in the child
        child.join(30)
        assert child.exitcode == -signal.SIGTERM
        assert announced(tmp_path) == []
    finally:
        child.kill()
        child.join(10)


# ------------------------------------------------------------------ signals

AGENT = textwrap.dedent(
    """
    import signal, sys, time
    import eddie_otel
    directory, name, handler = sys.argv[1:4]
    signum = getattr(signal, name)

    def application_handler(signum, frame):
        print("the application's handler ran", flush=True)
        sys.exit(7)

    if handler == "none":
        # As Python starts when its parent does not ignore the signal (a shell's background job
        # ignores SIGINT, and passes that on): the test is about the application's choices.
        signal.signal(signum, signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)
    elif handler == "before":
        signal.signal(signum, application_handler)
    elif handler == "default":
        signal.signal(signum, signal.SIG_DFL)
    eddie_otel.configure(port=0, discovery_dir=directory)
    if handler == "after":
        signal.signal(signum, application_handler)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def signalled(tmp_path: Path, name: str, handler: str) -> tuple[int, str]:
    """Start an announcing agent, send it signal `name`, and return its exit status and output."""
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(tmp_path), name, handler],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().strip() == "ready"
        assert len(announced(tmp_path)) == 1
        agent.send_signal(getattr(signal, name))
        output, _ = agent.communicate(timeout=30)
        return agent.returncode, output
    finally:
        agent.kill()
        agent.wait(10)


@pytest.mark.parametrize(
    ("name", "handler", "status"),
    [
        # SIGTERM's default action ends the process: eddie withdraws, then lets it.
        ("SIGTERM", "none", -signal.SIGTERM),
        # SIGINT's default in Python is KeyboardInterrupt, which ends the interpreter (by SIGINT) after atexit.
        ("SIGINT", "none", -signal.SIGINT),
        ("SIGINT", "default", -signal.SIGINT),
        # An application's handler runs and decides the exit status; its exit path withdraws.
        ("SIGTERM", "before", 7),
        ("SIGINT", "before", 7),
        # A handler installed later is the application's alone: eddie never takes it back.
        ("SIGTERM", "after", 7),
        ("SIGINT", "after", 7),
    ],
)
def test_a_signalled_process_is_unannounced_with_its_own_exit_status(
    tmp_path: Path, name: str, handler: str, status: int
) -> None:
    returncode, output = signalled(tmp_path, name, handler)
    assert returncode == status, output
    assert ("the application's handler ran" in output) == (status == 7)
    assert announced(tmp_path) == []


def test_a_killed_process_leaves_a_file_found_stale(tmp_path: Path) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(tmp_path), "SIGTERM", "none"],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert agent.stdout is not None
    assert agent.stdout.readline().strip() == "ready"
    agent.kill()
    agent.wait(10)
    (path,) = tmp_path.glob("*.json")
    assert is_stale(path)


def test_only_a_default_signal_action_is_replaced_and_shutdown_gives_it_back(tmp_path: Path) -> None:
    def application_handler(signum: int, frame: object) -> None:
        pass

    previous_int = signal.signal(signal.SIGINT, application_handler)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        eddie_otel.configure(port=0, discovery_dir=str(tmp_path))
        assert signal.getsignal(signal.SIGINT) is application_handler
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, application_handler)
        eddie_otel.shutdown()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is application_handler
        # Without a discovery directory nothing is announced and no handler is installed.
        eddie_otel.configure(port=0)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def test_announcing_from_another_thread_installs_no_handler(tmp_path: Path) -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        thread = threading.Thread(target=eddie_otel.configure, kwargs={"port": 0, "discovery_dir": str(tmp_path)})
        thread.start()
        thread.join(30)
        assert len(announced(tmp_path)) == 1
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        current = runtime.configured()
        assert current is not None
        assert current.announcement is not None
    finally:
        signal.signal(signal.SIGTERM, previous)
