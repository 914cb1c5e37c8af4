"""Bounded series through the public API: forget_agent/forget_container, the series TTL, the per-metric budget.

Each is read back from the exposition, the way a scrape sees it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import eddie_otel
from eddie_otel import runtime
from tests.support.helpers import drive_history, sample_value


def exposition() -> str:
    return runtime.current().telemetry.exposition()[0].decode()


def value(name: str, **labels: str) -> float | None:
    """The sample's value, or None when the series is not in the exposition."""
    try:
        return sample_value(exposition(), name, **labels)
    except KeyError:
        return None


def label_names(text: str) -> dict[str, frozenset[str]]:
    """Every family of an exposition and the label names its samples carry."""
    return {
        family.name: frozenset(name for sample in family.samples for name in sample.labels)
        for family in text_string_to_metric_families(text)
    }


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record_everything_of_agent(agent: str) -> None:
    """Put `agent` in every family that has an agent label."""
    eddie_otel.record_task(stage="codegen", duration_seconds=1.0, agent=agent)
    eddie_otel.record_chunk(agent=agent, duration_seconds=0.5)
    eddie_otel.record_chunk(agent=agent, duration_seconds=0.5, success=False, reason="crash")
    assert eddie_otel.record_split(agent=agent, chunks=2, depth=1)
    assert not eddie_otel.record_split(agent=agent, chunks=2, depth=9)
    eddie_otel.record_timeout(agent=agent, stage="codegen")

    @eddie_otel.chunk(agent=agent)
    def running() -> Iterator[int]:
        yield 1

    generator = running()
    next(generator)  # started: agent_active_tasks{agent} is 1
    generator.close()  # and finished: 0, a series all the same


# ------------------------------------------------------------------ forget_agent / forget_container


def test_forget_agent_drops_every_series_of_the_agent(configured: object) -> None:
    record_everything_of_agent("gone")
    record_everything_of_agent("kept")
    before = exposition()
    assert before.count('agent="gone"') == before.count('agent="kept"') > 10

    eddie_otel.forget_agent("gone")

    after = exposition()
    assert 'agent="gone"' not in after
    assert after.count('agent="kept"') == before.count('agent="kept"')
    assert sample_value(after, "agent_tasks_executed_total", agent="kept") == 4
    # Series without an agent label keep what the forgotten agent added to them.
    assert sample_value(after, "task_success_total", stage="codegen") == 2


def test_forget_agent_frees_its_slot_under_the_cap() -> None:
    eddie_otel.configure(serve=False, max_label_values=3)
    for agent in ("a0", "a1", "a2"):
        eddie_otel.record_timeout(agent=agent, stage="s")
    eddie_otel.record_timeout(agent="a3", stage="s")  # the cap is full: a3 is `other`
    assert value("timeout_events_total", agent="other", stage="s", reason="timeout") == 1

    eddie_otel.forget_agent("a1")
    eddie_otel.record_timeout(agent="a4", stage="s")  # takes a1's slot, under its own name
    eddie_otel.record_timeout(agent="a5", stage="s")  # the cap is full again

    text = exposition()
    assert sample_value(text, "timeout_events_total", agent="a4", stage="s", reason="timeout") == 1
    assert sample_value(text, "timeout_events_total", agent="other", stage="s", reason="timeout") == 2
    assert 'agent="a1"' not in text
    assert sample_value(text, "eddie_otel_label_values_capped_total", label="agent") == 2


def test_forget_container_drops_its_series_and_frees_its_slot() -> None:
    eddie_otel.configure(serve=False, max_label_values=2)
    for container in ("c0", "c1"):
        eddie_otel.record_docker_allocation(container=container, cpu_millicores=500, memory_bytes=2**20)
        eddie_otel.record_elastic_adjustment(container=container, type="cpu_up")

    eddie_otel.forget_container("c0")
    eddie_otel.record_docker_allocation(container="c2", cpu_millicores=250, memory_bytes=2**21)

    text = exposition()
    assert 'container="c0"' not in text
    assert sample_value(text, "docker_container_cpu_limit", container="c1") == 500
    assert sample_value(text, "docker_elastic_adjustment_total", container="c1", type="cpu_up") == 1
    assert sample_value(text, "docker_container_cpu_limit", container="c2") == 250
    assert sample_value(text, "docker_container_memory_limit_bytes", container="c2") == 2**21
    assert 'container="other"' not in text


def test_forget_rejects_an_invalid_name(configured: object) -> None:
    with pytest.raises(ValueError, match="agent"):
        eddie_otel.forget_agent("not valid!")
    with pytest.raises(ValueError, match="container"):
        eddie_otel.forget_container("")


def test_a_decorated_function_records_again_after_its_agent_was_forgotten(configured: object) -> None:
    @eddie_otel.chunk(agent="worker")
    def work() -> str:
        return "done"

    @eddie_otel.task(stage="review", agent="worker")
    def review() -> str:
        return "ok"

    assert (work(), review()) == ("done", "ok")
    assert value("agent_tasks_executed_total", agent="worker") == 2

    eddie_otel.forget_agent("worker")
    assert 'agent="worker"' not in exposition()

    # The decorators resolved their series once; forgetting the agent makes them resolve them again.
    assert (work(), work(), review()) == ("done", "done", "ok")
    text = exposition()
    assert sample_value(text, "agent_tasks_executed_total", agent="worker") == 3
    assert sample_value(text, "chunk_execution_seconds_count", agent="worker") == 2
    assert sample_value(text, "agent_active_tasks", agent="worker") == 0
    assert sample_value(text, "task_success_total", stage="review") == 2


def test_a_forgotten_agent_whose_slot_was_taken_records_as_other() -> None:
    eddie_otel.configure(serve=False, max_label_values=1)

    @eddie_otel.chunk(agent="first")
    def work() -> None:
        return None

    work()
    eddie_otel.forget_agent("first")
    eddie_otel.record_chunk(agent="second", duration_seconds=1.0)  # takes the only slot
    work()

    text = exposition()
    assert sample_value(text, "agent_tasks_executed_total", agent="second") == 1
    assert sample_value(text, "agent_tasks_executed_total", agent="other") == 1
    assert 'agent="first"' not in text


# ------------------------------------------------------------------ EDDIE_OTEL_SERIES_TTL_SECONDS


def test_gauges_not_updated_for_the_ttl_disappear_but_running_tasks_stay() -> None:
    rt = eddie_otel.configure(serve=False, series_ttl_seconds=60)
    # The decorators give the history their own time.perf_counter() reading (one clock read serves
    # the duration and the history), so the driven clock starts there and only moves forward.
    start = time.perf_counter()
    clock = FakeClock(start)
    drive_history(rt, clock)

    @eddie_otel.chunk(agent="busy")
    def long_chunk() -> Iterator[int]:
        yield 1

    @eddie_otel.chunk(agent="idle")
    def short_chunk() -> None:
        return None

    eddie_otel.record_docker_allocation(container="old", cpu_millicores=500, memory_bytes=2**20)
    running = long_chunk()
    next(running)  # agent_active_tasks{agent="busy"} is 1 until the chunk ends
    short_chunk()  # agent_active_tasks{agent="idle"} back to 0
    clock.now = start + 50
    eddie_otel.record_docker_allocation(container="new", cpu_millicores=250, memory_bytes=2**20)

    clock.now = start + 75  # the TTL sweep runs when a record opens a new 10-second bucket
    eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)

    text = exposition()
    assert 'container="old"' not in text  # set 75 s ago
    assert sample_value(text, "docker_container_cpu_limit", container="new") == 250  # 25 s ago
    assert sample_value(text, "agent_active_tasks", agent="busy") == 1  # still running: it stays
    with pytest.raises(KeyError):
        sample_value(text, "agent_active_tasks", agent="idle")
    # Only gauges expire: counters and histograms keep their series.
    assert sample_value(text, "agent_tasks_executed_total", agent="idle") == 1
    assert sample_value(text, "chunk_execution_seconds_count", agent="idle") == 1

    running.close()
    assert value("agent_active_tasks", agent="busy") == 0


def test_without_a_ttl_gauges_stay(configured: object) -> None:
    clock = FakeClock(1000.0)
    drive_history(runtime.current(), clock)
    eddie_otel.record_docker_allocation(container="old", cpu_millicores=500, memory_bytes=2**20)

    clock.now = 1000.0 + 30 * 86400
    eddie_otel.record_merge(chunks_combined=1, duplicates_removed=0)

    assert value("docker_container_cpu_limit", container="old") == 500


# ------------------------------------------------------------------ EDDIE_OTEL_MAX_SERIES_PER_METRIC


def test_past_the_series_budget_a_combination_goes_to_the_all_other_series() -> None:
    eddie_otel.configure(serve=False, max_series_per_metric=5)
    for index in range(5):
        eddie_otel.record_timeout(agent=f"a{index}", stage=f"s{index}", reason="deadline")
    before = label_names(exposition())
    assert value("eddie_otel_series_overflow_total", metric="timeout_events_total") is None

    eddie_otel.record_timeout(agent="a5", stage="s5", reason="deadline")  # the 6th combination
    eddie_otel.record_timeout(agent="a6", stage="s0", reason="late")  # and the 7th
    eddie_otel.record_timeout(agent="a0", stage="s0", reason="deadline")  # a known one keeps its series

    text = exposition()
    other = {"agent": "other", "stage": "other", "reason": "other"}
    assert sample_value(text, "timeout_events_total", **other) == 2
    assert sample_value(text, "eddie_otel_series_overflow_total", metric="timeout_events_total") == 2
    assert sample_value(text, "timeout_events_total", agent="a0", stage="s0", reason="deadline") == 2
    assert 'agent="a5"' not in text
    assert "otel_metric_overflow" not in text
    shape = label_names(text)
    assert {name: shape[name] for name in before} == before  # the same label names as before
    series = [
        sample
        for family in text_string_to_metric_families(text)
        if family.name == "timeout_events"
        for sample in family.samples
        if sample.name == "timeout_events_total"
    ]
    assert len(series) == 6  # the budget's five, and the overflow series


def test_the_overflow_self_metric_counts_each_new_combination_once_on_every_path() -> None:
    eddie_otel.configure(serve=False, max_series_per_metric=3)

    @eddie_otel.task(stage="decorated", agent="d")
    def work() -> None:
        return None

    # One agent (and the decorated one): its last-seen gauge stays within the budget.
    for index in range(3):  # the budget's three series
        eddie_otel.record_timeout(agent="a", stage=f"s{index}", reason="deadline")
    for stage in ("x", "y"):
        eddie_otel.record_task(stage=stage, duration_seconds=1.0)
    for _ in range(1000):
        eddie_otel.record_timeout(agent="a", stage="s3", reason="deadline")  # one new combination
        work()  # the third task_success_total series: within the budget
    text = exposition()
    other = {"agent": "other", "stage": "other", "reason": "other"}
    assert sample_value(text, "timeout_events_total", **other) == 1000
    assert sample_value(text, "eddie_otel_series_overflow_total", metric="timeout_events_total") == 1
    assert sample_value(text, "task_success_total", stage="decorated") == 1000
    eddie_otel.record_task(stage="another", duration_seconds=1.0)
    eddie_otel.record_task(stage="another", duration_seconds=1.0)
    text = exposition()
    assert sample_value(text, "task_success_total", stage="other") == 2
    assert sample_value(text, "eddie_otel_series_overflow_total", metric="task_success_total") == 1


def test_the_budget_is_per_metric_and_covers_histograms() -> None:
    eddie_otel.configure(serve=False, max_series_per_metric=2)
    for stage in ("s0", "s1", "s2"):
        eddie_otel.record_task(stage=stage, duration_seconds=1.0)

    text = exposition()
    assert sample_value(text, "task_execution_seconds_count", stage="s1") == 1
    assert sample_value(text, "task_execution_seconds_count", stage="other") == 1
    assert sample_value(text, "task_success_total", stage="other") == 1
    assert sample_value(text, "eddie_otel_series_overflow_total", metric="task_execution_seconds") == 1
    assert sample_value(text, "eddie_otel_series_overflow_total", metric="task_success_total") == 1
    # timeout_events_total has its own budget, untouched.
    eddie_otel.record_timeout(agent="a", stage="s2")
    assert value("timeout_events_total", agent="a", stage="s2", reason="timeout") == 1
