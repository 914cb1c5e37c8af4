"""Deadlines raised by signal handlers, at any point of a decorated call, a record call or a scrape.

An agent bounds a task with a one-shot `setitimer` whose SIGALRM handler raises `TimeoutError`.
Here the application calls decorated functions in a loop until its deadline fires, a thousand times
over, with deadlines of 20 to 400 µs: most land somewhere in eddie's own start and finish code, the
store's lock included. Every deadline must reach the application; no lock may stay held; each call
whose body began is counted once, and for plain calls exactly every call but those the deadline
stopped at the wrapper's very first instruction; nothing is logged. Then another thread records
and scrapes. Each kind of call runs in a fresh interpreter (a real process, real signals);
coroutines are driven by hand, as an event loop would drive them, so that no loop callback, which
keeps an exception for itself, stands between a deadline and the application. Each kind runs
untraced and traced (a real SDK TracerProvider with a batch span processor), and the same
deadlines land in record calls and in scrapes made from the application's thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEADLINES = 1000

SCRIPT = textwrap.dedent(
    """
    import dis, io, json, logging, random, signal, sys, threading
    import eddie_otel
    from eddie_otel import runtime

    KIND, DEADLINES, TRACED = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "traced"
    # eddie's own log only: the logging module's locks are not safe from an exception a signal raises.
    log = io.StringIO()
    logger = logging.getLogger("eddie_otel")
    logger.addHandler(logging.StreamHandler(log))
    logger.setLevel(logging.DEBUG)

    class Deadline(TimeoutError):
        pass

    armed = False
    fired = 0

    def on_alarm(signum, frame):
        global fired
        if armed:
            fired += 1
            raise Deadline()

    signal.signal(signal.SIGALRM, on_alarm)

    # What OpenTelemetry logs (a detach that failed: a deadline it caught), kept without a lock.
    otel_log = []

    class Kept(logging.Handler):
        def handle(self, record):
            otel_log.append(record.getMessage())
            return True

    logging.getLogger("opentelemetry").addHandler(Kept())
    spans = None
    if TRACED:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        # A batch that never fills, in a queue that never fills: neither the SDK's wake-up of its
        # export thread (threading.Event.set) nor the warning a full queue logs is safe from an
        # exception a signal raises (a Python-level __enter__ can be left holding its lock), for
        # the application's own spans as much as for eddie's.
        batch = BatchSpanProcessor(spans, max_queue_size=1_000_000, max_export_batch_size=1_000_000)
        provider.add_span_processor(batch)
        eddie_otel.configure(serve=False, tracer_provider=provider)
    else:
        eddie_otel.configure(serve=False)

    # Calls whose body began: each of them must be counted.
    bodies = [0]

    @eddie_otel.task(stage="s", agent="a")
    def plain():
        bodies[0] += 1
        return sum(range(20))

    @eddie_otel.task(stage="s", agent="a")
    async def coroutine():
        bodies[0] += 1
        return sum(range(20))

    @eddie_otel.task(stage="s", agent="a")
    def generator():
        bodies[0] += 1
        yield sum(range(10))
        yield sum(range(10))

    @eddie_otel.task(stage="s", agent="a")
    async def async_generator():
        bodies[0] += 1
        yield sum(range(10))
        yield sum(range(10))

    attempts = 0

    def run(coroutine_object):
        # Driven by hand, as an event loop would, without one: nothing here awaits a real future,
        # and no loop machinery (its callbacks and hooks, which keep exceptions for themselves)
        # stands between the deadline and the application.
        try:
            while True:
                coroutine_object.send(None)
        except StopIteration as stop:
            return stop.value

    def exhaust(agen):
        try:
            while True:
                run(agen.__anext__())
        except StopAsyncIteration:
            pass

    def drive():
        global attempts
        if KIND == "plain":
            while fired == caught:  # else the deadline fired and was swallowed somewhere
                attempts += 1
                plain()
        elif KIND == "generator":
            while fired == caught:
                attempts += 1
                for _ in generator():
                    pass
        elif KIND == "coroutine":
            while fired == caught:
                attempts += 1
                run(coroutine())
        elif KIND == "async_generator":
            while fired == caught:
                attempts += 1
                exhaust(async_generator())
        elif KIND == "record":
            while fired == caught:
                eddie_otel.record_split(agent="a", chunks=3, depth=1)
                eddie_otel.record_merge(chunks_combined=3, duplicates_removed=1)
        elif KIND == "scrape":
            # What an application may read in its own thread: the exposition and the summary.
            while fired == caught:
                attempts += 1
                runtime.current().telemetry.exposition()
                eddie_otel.summary()

    wrappers = {plain.__code__, coroutine.__code__, generator.__code__, async_generator.__code__}
    entry_lines = {
        code: next(i.positions.lineno for i in dis.get_instructions(code) if i.opname == "RESUME")
        for code in wrappers
    }

    def stopped_at_entry(error):
        # The deadline stopped a wrapper at its first instruction: that call never began.
        frames = []
        tb = error.__traceback__
        while tb is not None:
            frames.append(tb)
            tb = tb.tb_next
        inner = [tb for tb in frames if tb.tb_frame.f_code is not on_alarm.__code__]
        last = inner[-1]
        code = last.tb_frame.f_code
        return code in entry_lines and last.tb_lineno == entry_lines[code]

    # Where Python itself cannot pass an exception on (a weakref callback, a finalizer), it reports
    # it here: none may happen, and one that did would say whether it was still in eddie's code.
    elsewhere = []

    def in_eddie(error):
        tb = error.__traceback__ if error is not None else None
        return tb is not None and "eddie_otel" in tb.tb_frame.f_code.co_filename

    sys.unraisablehook = lambda report: elsewhere.append(in_eddie(report.exc_value))

    rng = random.Random(7)
    caught = entries = 0
    swallowed = []
    for _ in range(DEADLINES):
        try:
            armed = True
            signal.setitimer(signal.ITIMER_REAL, rng.uniform(20e-6, 400e-6))
            drive()
        except Deadline as error:
            armed = False
            caught += 1
            entries += stopped_at_entry(error)
        else:
            # The deadline never reached the application.
            armed = False
            swallowed.append(1)
            caught = fired
    armed = False
    signal.setitimer(signal.ITIMER_REAL, 0)

    telemetry = runtime.current().telemetry
    lock_free = telemetry.store.lock.acquire(timeout=5)
    if lock_free:
        telemetry.store.lock.release()

    def from_another_thread():
        eddie_otel.record_timeout(agent="b", stage="t", reason="late")
        result["text"] = telemetry.exposition()[0].decode()

    result = {}
    thread = threading.Thread(target=from_another_thread)
    thread.start()
    thread.join(10)
    text = result.get("text", "")

    def total(name, **labels):
        found = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                found += float(line.rsplit(" ", 1)[1])
        return found

    summary = eddie_otel.summary()
    if TRACED:
        provider.force_flush()
    print(json.dumps({
        "spans": len(spans.get_finished_spans()) if TRACED else 0, "otel_logged": otel_log,
        "fired": fired, "caught": caught - len(swallowed), "swallowed": len(swallowed),
        "elsewhere": len(elsewhere), "swallowed_in_eddie": sum(elsewhere),
        "entries": entries, "attempts": attempts, "bodies": bodies[0], "lock_free": lock_free,
        "other_thread": bool(text), "success": total("task_success_total", stage="s"),
        "failures": total("task_failure_total", stage="s"),
        "timeouts": total("timeout_events_total", stage="s"),
        "executed": total("agent_tasks_executed_total", agent="a"),
        "active": total("agent_active_tasks", agent="a"),
        "histogram": total("task_execution_seconds_count", stage="s"),
        "splits": total("task_split_total", agent="a"), "chunks": total("task_split_chunks_total", agent="a"),
        "combined": total("merge_chunks_combined_total"), "duplicates": total("merge_deduplication_total"),
        "late": total("timeout_events_total", agent="b"), "summary_timeouts": summary["totals"]["timeout_events"],
        "logged": [line for line in log.getvalue().splitlines() if "eddie" in line],
    }))
    """
)


def run(kind: str, traced: bool = False) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind, str(DEADLINES), "traced" if traced else "untraced"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
@pytest.mark.parametrize("kind", ["plain", "coroutine", "generator", "async_generator"])
def test_every_deadline_reaches_the_caller_and_each_call_counts_once(kind: str, traced: bool) -> None:
    # Traced, each call is also a span, current while it runs: OpenTelemetry's own detach would
    # catch a deadline landing inside it (and log "Failed to detach context"); eddie's must not.
    result = run(kind, traced)
    assert result["fired"] == result["caught"] == DEADLINES
    assert (result["swallowed"], result["elsewhere"]) == (0, 0)
    assert result["lock_free"] is True
    assert result["other_thread"] is True
    assert result["logged"] == []
    assert result["otel_logged"] == []
    if traced:
        # Each counted call had its span, save those a deadline stopped before the span began.
        assert 0 < result["spans"] <= result["executed"]
    assert result["active"] == 0
    # Each deadline ended one call: as a timeout when it landed before the call's counts were made,
    # as the success it already was when it landed after; never twice.
    assert result["timeouts"] == result["failures"] > 0
    assert result["executed"] == result["success"] + result["failures"] == result["histogram"]
    # Every call whose body began is counted, and no call is counted that the application did not make.
    assert result["bodies"] <= result["executed"] <= result["attempts"]
    if kind == "plain":
        # Exactly: the only calls not counted are those stopped at the wrapper's first instruction.
        assert result["executed"] == result["attempts"] - result["entries"]


def test_a_deadline_during_a_scrape_reaches_the_caller() -> None:
    result = run("scrape")
    assert result["fired"] == result["caught"] == DEADLINES
    assert (result["swallowed"], result["elsewhere"]) == (0, 0)
    assert result["attempts"] > 0
    assert result["lock_free"] is True
    assert result["other_thread"] is True
    assert result["logged"] == []
    assert result["otel_logged"] == []
    assert result["late"] == result["summary_timeouts"] == 1


def test_record_calls_are_whole_or_absent_under_deadlines() -> None:
    result = run("record")
    assert result["fired"] == result["caught"] == DEADLINES
    assert result["swallowed"] == 0
    assert result["lock_free"] is True
    assert result["logged"] == []
    # A split counts one split and three chunks together, a merge three chunks and one duplicate.
    assert result["chunks"] == 3 * result["splits"]
    assert result["combined"] == 3 * result["duplicates"]
    assert result["late"] == result["summary_timeouts"] == 1
