"""@task, @chunk and the record calls: what each records, as read back from the exposition."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import eddie_otel
from eddie_otel import runtime
from tests.support.helpers import sample_value


def exposition() -> str:
    return runtime.current().telemetry.exposition()[0].decode()


def value(name: str, **labels: str) -> float:
    try:
        return sample_value(exposition(), name, **labels)
    except KeyError:
        return 0.0


# --------------------------------------------------------- the decorator matrix


def make(kind: str, outcome: str) -> Any:
    """A decorated function of `kind` whose call ends in `outcome`."""

    def act() -> None:
        if outcome == "failure":
            raise ValueError("bad input")
        if outcome == "timeout":
            raise TimeoutError("too slow")

    if kind == "sync":

        def sync_fn() -> str:
            act()
            return "done"

        fn: Any = sync_fn
    elif kind == "async":

        async def async_fn() -> str:
            await asyncio.sleep(0)
            act()
            return "done"

        fn = async_fn
    elif kind == "generator":

        def gen_fn() -> Iterator[int]:
            yield 1
            act()
            yield 2

        fn = gen_fn
    else:

        async def agen_fn() -> AsyncIterator[int]:
            yield 1
            await asyncio.sleep(0)
            act()
            yield 2

        fn = agen_fn
    return eddie_otel.task(stage="codegen", agent="python-agent")(fn)


def drive(kind: str, fn: Any, close_early: bool = False) -> Any:
    """Call `fn` as its kind wants; return what the caller gets, or raise what it raises."""
    if kind == "sync":
        return fn()
    if kind == "async":
        return asyncio.run(fn())
    if kind == "generator":
        gen = fn()
        if close_early:
            first = next(gen)
            gen.close()
            return [first]
        return list(gen)

    async def consume() -> list[int]:
        agen = fn()
        if close_early:
            first = await agen.__anext__()
            await agen.aclose()
            return [first]
        return [item async for item in agen]

    return asyncio.run(consume())


KINDS = ["sync", "async", "generator", "async_generator"]
EXPECTED = {"sync": "done", "async": "done", "generator": [1, 2], "async_generator": [1, 2]}


@pytest.mark.parametrize("kind", KINDS)
def test_success_records_duration_success_and_agent_load(kind: str, configured: object) -> None:
    fn = make(kind, "success")
    assert drive(kind, fn) == EXPECTED[kind]
    assert value("task_success_total", stage="codegen") == 1
    assert value("task_execution_seconds_count", stage="codegen") == 1
    assert value("agent_tasks_executed_total", agent="python-agent") == 1
    assert value("agent_active_tasks", agent="python-agent") == 0
    assert "task_failure_total" not in exposition()


@pytest.mark.parametrize("kind", KINDS)
def test_failure_reraises_and_records_the_exception_class(kind: str, configured: object) -> None:
    fn = make(kind, "failure")
    with pytest.raises(ValueError, match="bad input"):
        drive(kind, fn)
    assert value("task_failure_total", stage="codegen", reason="ValueError") == 1
    assert value("task_success_total", stage="codegen") == 0
    assert value("task_execution_seconds_count", stage="codegen") == 1
    assert value("agent_active_tasks", agent="python-agent") == 0
    assert "timeout_events_total" not in exposition()


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_counts_as_timeout_and_failure(kind: str, configured: object) -> None:
    fn = make(kind, "timeout")
    with pytest.raises(TimeoutError):
        drive(kind, fn)
    assert value("task_failure_total", stage="codegen", reason="timeout") == 1
    assert value("timeout_events_total", agent="python-agent", stage="codegen", reason="timeout") == 1
    assert value("agent_active_tasks", agent="python-agent") == 0


@pytest.mark.parametrize("kind", ["generator", "async_generator"])
def test_closing_a_generator_early_ends_it_as_a_success(kind: str, configured: object) -> None:
    fn = make(kind, "success")
    assert drive(kind, fn, close_early=True) == [1]
    assert value("task_success_total", stage="codegen") == 1
    assert value("task_execution_seconds_count", stage="codegen") == 1
    assert value("agent_active_tasks", agent="python-agent") == 0


def test_active_gauge_counts_calls_in_flight(configured: object) -> None:
    inside = threading.Event()
    release = threading.Event()

    @eddie_otel.task(stage="codegen", agent="python-agent")
    def blocked() -> None:
        inside.set()
        release.wait(5)

    thread = threading.Thread(target=blocked)
    thread.start()
    assert inside.wait(5)
    assert value("agent_active_tasks", agent="python-agent") == 1
    release.set()
    thread.join(5)
    assert value("agent_active_tasks", agent="python-agent") == 0


def test_generator_values_sent_and_thrown_reach_the_inner_generator(configured: object) -> None:
    @eddie_otel.task(stage="codegen")
    def echo() -> Iterator[Any]:
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received}"
            except KeyError:
                received = "recovered"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "got a"
    assert gen.throw(KeyError("k")) == "got recovered"
    gen.close()
    assert value("task_success_total", stage="codegen") == 1


def test_async_generator_asend_and_athrow_reach_the_inner_generator(configured: object) -> None:
    @eddie_otel.task(stage="codegen")
    async def echo() -> AsyncIterator[Any]:
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received}"
            except KeyError:
                received = "recovered"

    async def scenario() -> list[Any]:
        agen = echo()
        out = [await agen.__anext__(), await agen.asend("a"), await agen.athrow(KeyError("k"))]
        await agen.aclose()
        return out

    assert asyncio.run(scenario()) == ["ready", "got a", "got recovered"]
    assert value("task_success_total", stage="codegen") == 1


def test_chunk_records_chunk_duration_and_agent_but_not_task_outcome(configured: object) -> None:
    class Agent:
        def __init__(self, name: str) -> None:
            self.name = name

        @eddie_otel.chunk(agent=lambda self, *args, **kwargs: self.name)
        async def run_chunk(self, n: int) -> int:
            return n * 2

    assert asyncio.run(Agent("agent-7").run_chunk(21)) == 42
    assert value("chunk_execution_seconds_count", agent="agent-7") == 1
    assert value("agent_tasks_executed_total", agent="agent-7") == 1
    assert "task_success_total" not in exposition()


def test_chunk_timeout_is_a_timeout_of_the_chunk_stage(configured: object) -> None:
    @eddie_otel.chunk(agent="agent-1")
    def run_chunk() -> None:
        raise concurrent.futures.TimeoutError()

    with pytest.raises(concurrent.futures.TimeoutError):
        run_chunk()
    assert value("timeout_events_total", agent="agent-1", stage="chunk", reason="timeout") == 1


def test_callable_labels_receive_the_call_arguments(configured: object) -> None:
    @eddie_otel.task(stage=lambda kind, **_: kind, agent=lambda kind, agent: agent)
    def run(kind: str, agent: str) -> str:
        return f"{kind}@{agent}"

    assert run("review", agent="agent-2") == "review@agent-2"
    assert run("test", agent="agent-3") == "test@agent-3"
    assert value("task_success_total", stage="review") == 1
    assert value("task_success_total", stage="test") == 1
    assert value("agent_tasks_executed_total", agent="agent-3") == 1


def test_wrapped_functions_keep_name_doc_and_signature() -> None:
    def original(a: int, b: str = "x", *, c: float = 1.0) -> str:
        """Docstring."""
        return f"{a}{b}{c}"

    async def coroutine(a: int) -> int:
        return a

    wrapped = eddie_otel.task(stage="s")(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Docstring."
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(eddie_otel.chunk(agent="a")(coroutine))


def test_a_failing_label_callable_never_reaches_the_caller(
    configured: object, caplog: pytest.LogCaptureFixture
) -> None:
    @eddie_otel.task(stage="s", agent=lambda: 1 / 0)
    def run() -> str:
        return "still fine"

    with caplog.at_level(logging.WARNING, logger="eddie_otel"):
        assert run() == "still fine"
    assert value("agent_tasks_executed_total", agent="unknown") == 1
    assert "ZeroDivisionError" in caplog.text or "division by zero" in caplog.text


def test_an_invalid_label_value_from_a_callable_is_recorded_as_unknown(configured: object) -> None:
    @eddie_otel.task(stage=lambda: "has spaces and {braces}")
    def run() -> int:
        return 7

    assert run() == 7
    assert value("task_success_total", stage="unknown") == 1


def test_an_exception_class_name_that_is_no_label_value_is_recorded_as_unknown(configured: object) -> None:
    class ÉchecDeTâche(Exception):
        pass

    @eddie_otel.task(stage="s")
    def run() -> None:
        raise ÉchecDeTâche()

    with pytest.raises(ÉchecDeTâche):
        run()
    assert value("task_failure_total", stage="s", reason="unknown") == 1


def test_a_broken_instrumentation_is_logged_not_raised(
    configured: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    @eddie_otel.task(stage="s", agent="a")
    def run() -> str:
        return "result"

    run()
    store = runtime.current().telemetry.store

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("store on fire")

    monkeypatch.setattr(store, "finish", explode)
    monkeypatch.setattr(store, "succeed", explode)
    with caplog.at_level(logging.ERROR, logger="eddie_otel"):
        assert run() == "result"
    assert "could not finish recording" in caplog.text


def test_static_labels_are_validated_at_decoration() -> None:
    with pytest.raises(ValueError, match="stage may contain only"):
        eddie_otel.task(stage="bad stage")
    with pytest.raises(ValueError, match="agent must not be empty"):
        eddie_otel.chunk(agent="")


def test_sdk_disabled_calls_through_and_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    eddie_otel.configure(serve=False)

    @eddie_otel.task(stage="s", agent="a")
    def run() -> int:
        return 3

    assert run() == 3
    assert eddie_otel.record_split(agent="a", chunks=2, depth=1) is True
    assert runtime.current().telemetry.provider is None
    assert runtime.current().telemetry.store.series["task_success_total"].total() == 0


# ---------------------------------------------------------------- concurrency


def test_counts_are_exact_under_threads(configured: object) -> None:
    @eddie_otel.task(stage="codegen", agent="python-agent")
    def work(i: int) -> int:
        return i

    def worker() -> None:
        for i in range(10_000):
            work(i)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert value("task_success_total", stage="codegen") == 80_000
    assert value("agent_tasks_executed_total", agent="python-agent") == 80_000
    assert value("task_execution_seconds_count", stage="codegen") == 80_000
    assert value("agent_active_tasks", agent="python-agent") == 0


def test_record_calls_are_exact_under_threads(configured: object) -> None:
    def worker() -> None:
        for _ in range(2_000):
            eddie_otel.record_split(agent="a", chunks=3, depth=1)
            eddie_otel.record_merge(chunks_combined=3, duplicates_removed=1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert value("task_split_total", agent="a") == 16_000
    assert value("task_split_chunks_total", agent="a") == 48_000
    assert value("merge_chunks_combined_total") == 48_000
    assert value("merge_deduplication_total") == 16_000


# ------------------------------------------------------------ the record calls


def test_record_split_past_the_max_depth_counts_and_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDDIE_OTEL_MAX_FALLBACK_DEPTH", "2")
    eddie_otel.configure(serve=False)
    assert eddie_otel.record_split(agent="a", chunks=2, depth=2) is True
    assert eddie_otel.record_split(agent="a", chunks=2, depth=3) is False
    assert value("task_split_total", agent="a") == 1
    assert value("task_split_chunks_total", agent="a") == 2
    assert value("fallback_depth_exceeded_total", agent="a") == 1


def test_docker_allocation_sets_limits_and_counts_adjustments(configured: object) -> None:
    eddie_otel.record_docker_allocation(container="c1", cpu_millicores=500, memory_bytes=2**29)
    eddie_otel.record_docker_allocation(container="c1", cpu_millicores=1000, memory_bytes=2**29, adjustment="cpu_up")
    eddie_otel.record_elastic_adjustment(container="c1", type="memory_down")
    assert value("docker_container_cpu_limit", container="c1") == 1000
    assert value("docker_container_memory_limit_bytes", container="c1") == 2**29
    assert value("docker_elastic_adjustment_total", container="c1", type="cpu_up") == 1
    assert value("docker_elastic_adjustment_total", container="c1", type="memory_down") == 1


def test_record_task_and_record_chunk_match_the_decorators(configured: object) -> None:
    eddie_otel.record_task(stage="review", duration_seconds=1.5, agent="a1")
    eddie_otel.record_task(stage="review", duration_seconds=90, success=False, reason="timeout", agent="a1")
    eddie_otel.record_chunk(agent="a2", duration_seconds=0.2)
    assert value("task_success_total", stage="review") == 1
    assert value("task_failure_total", stage="review", reason="timeout") == 1
    assert value("timeout_events_total", agent="a1", stage="review", reason="timeout") == 1
    assert value("task_execution_seconds_bucket", stage="review", le="60.0") == 1
    assert value("task_execution_seconds_bucket", stage="review", le="120.0") == 2
    assert value("chunk_execution_seconds_count", agent="a2") == 1
    assert value("agent_tasks_executed_total", agent="a1") == 2


BAD_CALLS = [
    (lambda: eddie_otel.record_split(agent="a", chunks=0, depth=1), "chunks must be at least 1"),
    (lambda: eddie_otel.record_split(agent="a", chunks=2, depth=-1), "depth must be at least 0"),
    (lambda: eddie_otel.record_split(agent="a", chunks=True, depth=1), "chunks must be an integer"),
    (lambda: eddie_otel.record_split(agent="", chunks=2, depth=1), "agent must not be empty"),
    (lambda: eddie_otel.record_split(agent="a" * 65, chunks=2, depth=1), "agent is 65 characters long"),
    (lambda: eddie_otel.record_timeout(agent="a", stage="s p a c e", reason="x"), "stage may contain only"),
    (lambda: eddie_otel.record_timeout(agent="a", stage="s", reason=""), "reason must not be empty"),
    (lambda: eddie_otel.record_merge(chunks_combined=-1, duplicates_removed=0), "chunks_combined must be at least 0"),
    (lambda: eddie_otel.record_merge(chunks_combined=2, duplicates_removed=3), "duplicates_removed \\(3\\) cannot"),
    (
        lambda: eddie_otel.record_docker_allocation(container="c", cpu_millicores=0, memory_bytes=1),
        "cpu_millicores must be at least 1",
    ),
    (
        lambda: eddie_otel.record_docker_allocation(container="c", cpu_millicores=1, memory_bytes=1, adjustment="up"),
        "adjustment must be one of",
    ),
    (lambda: eddie_otel.record_elastic_adjustment(container="c", type="sideways"), "type must be one of"),
    (lambda: eddie_otel.record_elastic_adjustment(container=None, type="cpu_up"), "container must be a string"),  # type: ignore[arg-type]
    (lambda: eddie_otel.record_task(stage="s", duration_seconds=float("nan")), "duration_seconds must be a finite"),
    (lambda: eddie_otel.record_task(stage="s", duration_seconds=-1), "duration_seconds must be a finite"),
    (lambda: eddie_otel.record_chunk(agent="a", duration_seconds="1"), "duration_seconds must be a number"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("call", "message"), BAD_CALLS)
def test_bad_arguments_are_value_errors_naming_the_argument_and_change_nothing(
    call: Any, message: str, configured: object
) -> None:
    before = exposition()
    with pytest.raises(ValueError, match=message):
        call()
    assert exposition() == before


def test_label_values_past_the_cap_become_other_and_are_counted() -> None:
    eddie_otel.configure(serve=False, max_label_values=3)
    for i in range(5):
        eddie_otel.record_timeout(agent=f"agent-{i}", stage="s", reason="r")
    text = exposition()
    assert sample_value(text, "timeout_events_total", agent="agent-2", stage="s", reason="r") == 1
    assert sample_value(text, "timeout_events_total", agent="other", stage="s", reason="r") == 2
    assert sample_value(text, "eddie_otel_label_values_capped_total", label="agent") == 2
    assert "agent-3" not in text


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: eddie_otel.record_split(agent="a", chunks=10_001, depth=1), "chunks must be at most 10000, not 10001"),
        (lambda: eddie_otel.record_split(agent="a", chunks=2, depth=1_001), "depth must be at most 1000, not 1001"),
        (
            lambda: eddie_otel.record_task(stage="s", duration_seconds=8 * 24 * 3600.0),
            "duration_seconds must be a finite number of seconds from 0 to 604800",
        ),
        (
            lambda: eddie_otel.record_merge(chunks_combined=2, duplicates_removed=3),
            "duplicates_removed (3) cannot exceed chunks_combined (2)",
        ),
    ],
)
def test_a_record_call_refuses_what_the_webhook_refuses_with_the_same_words(call: Any, message: str) -> None:
    eddie_otel.configure(serve=False)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        call()
    assert runtime.current().telemetry.store.size() == 0


def test_a_successs_reason_is_left_out_by_the_record_calls() -> None:
    eddie_otel.configure(serve=False)
    eddie_otel.record_task(stage="s", duration_seconds=1.0, success=True, reason="timeout")
    eddie_otel.record_chunk(agent="a", duration_seconds=1.0, success=True, reason="x")
    text = runtime.current().telemetry.exposition()[0].decode()
    assert sample_value(text, "task_success_total", stage="s") == 1
    assert "timeout_events_total" not in text
    assert "chunk_failure_total" not in text


def test_an_own_failure_is_kept_from_the_caller_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from eddie_otel.recording.outcome import Site

    eddie_otel.configure(serve=False)

    @eddie_otel.task(stage="s", agent="a")
    def work() -> int:
        return 7

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the instrumentation is broken")

    monkeypatch.setattr(Site, "end", broken)
    with caplog.at_level(logging.DEBUG, logger="eddie_otel"):
        assert [work(), work(), work()] == [7, 7, 7]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None


def test_an_exception_a_signal_handler_raises_inside_the_recording_reaches_the_caller_as_a_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import signal

    from eddie_otel.recording.outcome import Site

    class Deadline(TimeoutError):
        pass

    def on_signal(signum: int, frame: object) -> None:
        raise Deadline("the agent's deadline")

    previous = signal.signal(signal.SIGUSR1, on_signal)
    eddie_otel.configure(serve=False)

    @eddie_otel.task(stage="s", agent="a")
    def work() -> int:
        return 7

    real_end = Site.end
    signalled = []

    def end_with_a_signal(self: Site, *args: Any, **kwargs: Any) -> None:
        if not signalled:
            signalled.append(True)
            # The signal arrives while eddie records the call's end, before the counts are made.
            signal.raise_signal(signal.SIGUSR1)
        real_end(self, *args, **kwargs)

    monkeypatch.setattr(Site, "end", end_with_a_signal)
    try:
        with caplog.at_level(logging.DEBUG, logger="eddie_otel"), pytest.raises(Deadline):
            work()
        assert work() == 7
    finally:
        signal.signal(signal.SIGUSR1, previous)
    text = runtime.current().telemetry.exposition()[0].decode()
    assert sample_value(text, "timeout_events_total", agent="a", stage="s", reason="timeout") == 1
    assert sample_value(text, "task_success_total", stage="s") == 1
    assert sample_value(text, "agent_tasks_executed_total", agent="a") == 2
    assert sample_value(text, "agent_active_tasks", agent="a") == 0
    assert caplog.records == []


def test_a_signal_after_a_success_was_counted_reaches_the_caller_and_the_call_still_leaves_its_running_count() -> None:
    import signal

    from eddie_otel.catalogue import AGENT_ACTIVE_TASKS

    class Deadline(TimeoutError):
        pass

    def on_signal(signum: int, frame: object) -> None:
        raise Deadline("the agent's deadline")

    eddie_otel.configure(serve=False)

    @eddie_otel.task(stage="s", agent="a")
    def work() -> int:
        return 7

    assert work() == 7
    cell = runtime.current().telemetry.store.of(AGENT_ACTIVE_TASKS).running(("a",))
    signalled = []

    class Running(set[object]):
        def discard(self, call: object) -> None:
            if not signalled:
                signalled.append(True)
                # The signal arrives after the success joined its tally, as the call leaves its running count.
                signal.raise_signal(signal.SIGUSR1)
            super().discard(call)

    cell.running = Running(cell.running)
    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        with pytest.raises(Deadline):
            work()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert signalled == [True]
    text = exposition()
    # Counted once, as the success it was; gone from the running count.
    assert sample_value(text, "task_success_total", stage="s") == 2
    assert sample_value(text, "agent_tasks_executed_total", agent="a") == 2
    assert sample_value(text, "task_execution_seconds_count", stage="s") == 2
    assert "timeout_events_total{" not in text
    assert sample_value(text, "agent_active_tasks", agent="a") == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_signal_as_the_call_ends_leaves_no_task_mark_current_in_the_caller(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from eddie_otel import fallback
    from eddie_otel.recording import decorators

    class Deadline(TimeoutError):
        pass

    def on_signal(signum: int, frame: object) -> None:
        raise Deadline("the agent's deadline")

    eddie_otel.configure(serve=False)
    clock = decorators._perf_counter
    readings = []

    def clock_with_a_signal() -> float:
        readings.append(True)
        now = clock()
        if len(readings) == 2:
            # The second reading is the call's end: the signal arrives right after it, before the
            # task's mark is undone.
            signal.raise_signal(signal.SIGUSR1)
        return now

    @eddie_otel.task(stage="s", agent="a")
    def work() -> int:
        return 7

    @eddie_otel.task(stage="s", agent="a")
    async def awork() -> int:
        return 7

    monkeypatch.setattr(decorators, "_perf_counter", clock_with_a_signal)
    previous = signal.signal(signal.SIGUSR1, on_signal)

    def caller() -> object:
        with pytest.raises(Deadline):
            work()
        return fallback.CURRENT.get()

    async def async_caller() -> object:
        with pytest.raises(Deadline):
            await awork()
        return fallback.CURRENT.get()

    try:
        assert fallback.CURRENT.get() is None
        # Nothing of the finished task is current in the caller: a split or chunk there is not the task's.
        assert (caller() if kind == "sync" else asyncio.run(async_caller())) is None
    finally:
        signal.signal(signal.SIGUSR1, previous)
    text = exposition()
    assert sample_value(text, "timeout_events_total", agent="a", stage="s", reason="timeout") == 1
    assert sample_value(text, "agent_active_tasks", agent="a") == 0


def test_a_failure_recorded_after_the_fact_makes_no_success_series(configured: object) -> None:
    eddie_otel.record_task("s", 1.0, success=False, reason="ValueError", agent="a")
    text = exposition()
    assert "task_success_total{" not in text
    assert sample_value(text, "task_failure_total", stage="s", reason="ValueError") == 1

    eddie_otel.record_task("s", 2.0, agent="a")
    assert value("task_success_total", stage="s") == 1
