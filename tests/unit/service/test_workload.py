"""The demo workload: it drives every catalogue metric, follows its seeded plan exactly, and stops promptly."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

import eddie_otel
from eddie_otel import runtime
from eddie_otel.catalogue import ADJUSTMENT_TYPES, METRICS, Kind
from eddie_otel.service.workload import STAGES, Adjustment, ChunkPlan, Step, TaskPlan, Workload
from tests.support.tracing import configure_traced, spans

# Generous bounds for polls and joins; none of them is what a test measures.
DEADLINE_SECONDS = 10.0
JOIN_SECONDS = 5.0

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape() -> Samples:
    """Every sample of the real exposition, by sample name, then by sorted label pairs."""
    text = runtime.current().telemetry.exposition()[0].decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def missing_metrics(samples: Samples) -> list[str]:
    """Catalogue metrics without activity: no non-zero sample (no sample at all, for agent_active_tasks)."""
    missing = []
    for metric in METRICS:
        name = metric.prometheus_name
        if metric.kind is Kind.HISTOGRAM:
            active = any(value > 0 for value in samples.get(f"{name}_count", {}).values())
        elif name == "agent_active_tasks":
            active = name in samples
        else:
            active = any(value > 0 for value in samples.get(name, {}).values())
        if not active:
            missing.append(name)
    return missing


def by_label(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples of `name` keyed by the values of `labels`, zeros left out."""
    result = {}
    for key, value in samples.get(name, {}).items():
        pairs = dict(key)
        if value:
            result[tuple(pairs[label] for label in labels)] = value
    return result


def poll(condition: Callable[[], bool], what: str) -> None:
    """Wait until `condition()` holds, failing after DEADLINE_SECONDS."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_SECONDS} s: {what}")
        time.sleep(0.02)


@pytest.fixture
def start() -> Iterator[Callable[[Workload], threading.Event]]:
    """Runs workloads in threads; each is stopped and joined at the end of the test."""
    running: list[tuple[threading.Thread, threading.Event]] = []

    def begin(workload: Workload) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(target=workload.run, args=(stop,), name="workload-under-test")
        thread.start()
        running.append((thread, stop))
        return stop

    yield begin
    for thread, stop in running:
        stop.set()
        thread.join(JOIN_SECONDS)
        assert not thread.is_alive()


def stop_and_join(stop: threading.Event) -> None:
    stop.set()
    for thread in threading.enumerate():
        if thread.name == "workload-under-test":
            thread.join(JOIN_SECONDS)
            assert not thread.is_alive(), "run() did not return after stop was set"


def workload_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("eddie-workload")]


# ------------------------------------------------------------------ what a plan should produce


@dataclass
class Expected:
    """What running a plan prefix must record, computed from the plan alone."""

    stats: Counter[str] = field(default_factory=Counter)
    success: Counter[tuple[str, ...]] = field(default_factory=Counter)
    failure: Counter[tuple[str, ...]] = field(default_factory=Counter)
    timeouts: Counter[tuple[str, ...]] = field(default_factory=Counter)
    executed: Counter[tuple[str, ...]] = field(default_factory=Counter)
    chunk_runs: Counter[tuple[str, ...]] = field(default_factory=Counter)
    splits: Counter[tuple[str, ...]] = field(default_factory=Counter)
    split_chunks: Counter[tuple[str, ...]] = field(default_factory=Counter)
    exceeded: Counter[tuple[str, ...]] = field(default_factory=Counter)
    adjustments: Counter[tuple[str, ...]] = field(default_factory=Counter)
    fallback: Counter[tuple[str, ...]] = field(default_factory=Counter)
    cpu: dict[tuple[str, ...], float] = field(default_factory=dict)
    memory: dict[tuple[str, ...], float] = field(default_factory=dict)
    combined: int = 0
    duplicates: int = 0

    def split(self, agent: str, chunks: int, depth: int, max_depth: int) -> bool:
        if depth > max_depth:
            self.stats["depth_exceeded"] += 1
            self.exceeded[(agent,)] += 1
            return False
        self.stats["splits"] += 1
        self.splits[(agent,)] += 1
        self.split_chunks[(agent,)] += chunks
        return True

    def chunks(self, chunks: tuple[ChunkPlan, ...], depth: int, stage: str, key: str, max_depth: int) -> str | None:
        results = []
        for chunk in chunks:
            self.stats["chunks"] += 1
            self.executed[(chunk.agent,)] += 1
            self.chunk_runs[(chunk.agent,)] += 1
            if chunk.outcome == "ok":
                results.append(chunk.key)
            elif chunk.outcome in ("timeout", "late"):
                self.stats["timeouts"] += 1
                reason = "timeout" if chunk.outcome == "timeout" else "deadline"
                self.timeouts[(chunk.agent, stage, reason)] += 1
                if self.split(chunk.agent, chunk.split, depth + 1, max_depth):
                    assert len(chunk.chunks) == chunk.split
                    merged = self.chunks(chunk.chunks, depth + 1, stage, chunk.key, max_depth)
                    if merged is not None:
                        results.append(merged)
        if not results:
            return None
        self.stats["merges"] += 1
        self.combined += len(results)
        self.duplicates += len(results) - len(set(results))
        return key


def expected_from(steps: list[Step], max_depth: int) -> Expected:
    expected = Expected()
    for step in steps:
        if isinstance(step, Adjustment):
            container = (step.container,)
            expected.cpu[container] = step.cpu_millicores
            expected.memory[container] = step.memory_bytes
            for kind in (step.adjustment, step.also):
                if kind not in (None, "initial"):
                    expected.stats["adjustments"] += 1
                    expected.adjustments[(step.container, str(kind))] += 1
            continue
        expected.stats["tasks"] += 1
        expected.executed[(step.agent,)] += 1
        if step.outcome == "ok":
            expected.success[(step.stage,)] += 1
            continue
        if step.outcome == "timeout":
            expected.stats["timeouts"] += 1
            expected.timeouts[(step.agent, step.stage, "timeout")] += 1
            # The split happens inside the task's call: a merge with any result rescues the task.
            if expected.split(step.agent, step.split, 1, max_depth):
                rescued = expected.chunks(step.chunks, 1, step.stage, f"task-{step.number}", max_depth) is not None
                expected.fallback[(step.stage, "rescued" if rescued else "failed")] += 1
                if rescued:
                    expected.success[(step.stage,)] += 1
                    continue
        expected.stats["failures"] += 1
        reason = "timeout" if step.outcome == "timeout" else step.outcome
        expected.failure[(step.stage, reason)] += 1
    return expected


def prefix(workload: Workload, tasks: int, max_depth: int) -> list[Step]:
    """The plan up to the first task not started: what a run that started `tasks` tasks did."""
    steps: list[Step] = []
    for step in workload.plan(tasks * 3 + 200, max_depth=max_depth):
        if isinstance(step, TaskPlan) and step.number == tasks:
            return steps
        steps.append(step)
    raise AssertionError(f"the plan has fewer than {tasks} tasks")


def walk(chunks: tuple[ChunkPlan, ...]) -> Iterator[tuple[int, ChunkPlan]]:
    stack = [(1, chunk) for chunk in chunks]
    while stack:
        depth, chunk = stack.pop()
        yield depth, chunk
        stack.extend((depth + 1, child) for child in chunk.chunks)


# ------------------------------------------------------------------ tests


def test_every_catalogue_metric_gets_data_within_ten_seconds_at_speed_one(
    configured: runtime.Runtime, start: Callable[[Workload], threading.Event]
) -> None:
    """The demo's promise at its real pace: every metric of the catalogue has activity within 10 s."""
    stop = start(Workload(seed=42, agents=4, speed=1.0))

    poll(lambda: not missing_metrics(scrape()), f"activity in {missing_metrics(scrape())}")

    stop_and_join(stop)
    assert missing_metrics(scrape()) == []


@pytest.mark.parametrize("max_depth", [3, 1])
def test_run_records_exactly_what_its_plan_says(max_depth: int, start: Callable[[Workload], threading.Event]) -> None:
    """A fast run, stopped midway, recorded exactly the plan up to its first task not started."""
    eddie_otel.configure(serve=False, max_fallback_depth=max_depth)
    workload = Workload(seed=7, agents=5, speed=40.0)
    stop = start(workload)
    poll(lambda: workload.stats()["tasks"] >= 150, "150 tasks")
    stop_and_join(stop)

    stats = workload.stats()
    expected = expected_from(prefix(workload, stats["tasks"], max_depth), max_depth)
    samples = scrape()
    assert stats == {name: expected.stats[name] for name in stats}
    assert stats["depth_exceeded"] >= 1
    assert stats["merges"] >= 1
    assert missing_metrics(samples) == []
    assert by_label(samples, "task_success_total", "stage") == expected.success
    assert by_label(samples, "task_failure_total", "stage", "reason") == expected.failure
    assert by_label(samples, "timeout_events_total", "agent", "stage", "reason") == expected.timeouts
    assert by_label(samples, "agent_tasks_executed_total", "agent") == expected.executed
    assert by_label(samples, "chunk_execution_seconds_count", "agent") == expected.chunk_runs
    assert by_label(samples, "task_split_total", "agent") == expected.splits
    assert by_label(samples, "task_split_chunks_total", "agent") == expected.split_chunks
    assert by_label(samples, "fallback_depth_exceeded_total", "agent") == expected.exceeded
    assert by_label(samples, "task_fallback_total", "stage", "outcome") == expected.fallback
    assert any(outcome == "rescued" for _, outcome in expected.fallback)
    # Every chunk runs through eddie_otel.propagate after its split: its queue wait is measured.
    assert by_label(samples, "chunk_queue_wait_seconds_count", "agent") == expected.chunk_runs
    assert set(by_label(samples, "agent_capacity", "agent").values()) == {4}
    # Every task and chunk records its usage, priced from the example table.
    runs = sum(expected.executed.values())
    assert sum(by_label(samples, "agent_tokens_total", "agent", "model", "type").values()) > 2300 * runs
    assert sum(by_label(samples, "agent_cost_usd_total", "agent", "model").values()) > 0
    assert by_label(samples, "docker_elastic_adjustment_total", "container", "type") == expected.adjustments
    assert by_label(samples, "docker_container_cpu_limit", "container") == expected.cpu
    assert by_label(samples, "docker_container_memory_limit_bytes", "container") == expected.memory
    assert samples["merge_chunks_combined_total"][()] == expected.combined
    assert samples["merge_deduplication_total"][()] == expected.duplicates
    # Nothing is left running: every agent's gauge is back to zero.
    assert set(samples["agent_active_tasks"].values()) == {0.0}
    assert len(samples["agent_active_tasks"]) == 5


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    """Decisions come from the seed alone: two workloads with one seed plan alike, another seed differs."""
    assert Workload(seed=11).plan(300) == Workload(seed=11).plan(300)
    assert Workload(seed=11, speed=9.0).plan(300) == Workload(seed=11).plan(300)
    assert Workload(seed=11).plan(300) != Workload(seed=12).plan(300)


def test_the_plan_simulates_a_distributed_fallback_system() -> None:
    """Agents, stages, spread durations, recursive 2 to 4 chunk splits, depth overflows, duplicates, failures."""
    steps = Workload(seed=42, agents=4).plan(3000)
    tasks = [step for step in steps if isinstance(step, TaskPlan)]
    adjustments = [step for step in steps if isinstance(step, Adjustment)]
    chunks = [(depth, chunk) for task in tasks for depth, chunk in walk(task.chunks)]

    assert {task.agent for task in tasks} == {"agent-1", "agent-2", "agent-3", "agent-4"}
    assert {task.stage for task in tasks} == set(STAGES)
    assert [a.container for a in adjustments[:4]] == [f"agent-{n}-container" for n in range(1, 5)]
    assert {a.adjustment for a in adjustments[:4]} == {"initial"}
    assert {a.adjustment for a in adjustments[4:]} == set(ADJUSTMENT_TYPES)
    assert any(a.also == "cpu_up" for a in adjustments)

    outcomes = Counter(task.outcome for task in tasks)
    assert outcomes["ok"] / len(tasks) > 0.9
    assert {"timeout", "ValueError", "RuntimeError", "ConnectionError"} <= set(outcomes)
    durations = sorted(task.seconds for task in tasks if task.outcome == "ok")
    assert durations[0] < 0.1
    assert durations[-1] > 2.0
    assert 0.2 < durations[len(durations) // 2] < 1.0

    timed_out = [task for task in tasks if task.outcome == "timeout"]
    assert all(2 <= task.split <= 4 and len(task.chunks) == task.split for task in timed_out)
    assert {depth for depth, _ in chunks} == {1, 2, 3}
    assert any(chunk.outcome == "late" for _, chunk in chunks)
    # A timed-out chunk at the maximum depth has a split planned that will be refused.
    assert any(depth == 3 and chunk.outcome == "timeout" and not chunk.chunks for depth, chunk in chunks)
    duplicates = sum(len(t.chunks) - len({c.key for c in t.chunks}) for t in timed_out)
    assert duplicates >= 1


def test_the_opening_covers_every_kind_of_event_first() -> None:
    """The first steps: allocations, a timeout whose split overflows the depth, a duplicate, an adjustment."""
    steps = Workload(seed=5, agents=4).plan(9)
    assert [type(step).__name__ for step in steps] == [
        "Adjustment",
        "Adjustment",
        "Adjustment",
        "Adjustment",
        "TaskPlan",
        "Adjustment",
        "TaskPlan",
        "TaskPlan",
        "TaskPlan",
    ]
    first = steps[4]
    assert isinstance(first, TaskPlan)
    assert (first.outcome, first.split, first.gap) == ("timeout", 3, 0.0)
    assert [chunk.key for chunk in first.chunks] == ["task-0.0", "task-0.1", "task-0.1"]
    depths = [depth for depth, chunk in walk(first.chunks) if chunk.outcome == "timeout" and not chunk.chunks]
    assert depths == [3]
    initial = steps[0]
    assert isinstance(initial, Adjustment)
    assert steps[5] == Adjustment("agent-1-container", "cpu_up", initial.cpu_millicores + 500, initial.memory_bytes)
    assert [step.outcome for step in steps[6:] if isinstance(step, TaskPlan)] == ["ok", "ValueError", "ok"]


def test_stop_returns_promptly_and_leaves_no_thread(
    configured: runtime.Runtime, start: Callable[[Workload], threading.Event]
) -> None:
    """Stopped mid-flight at the real pace, run() returns, its pools are gone and the gauges are back to zero."""
    workload = Workload(seed=3, agents=4, speed=1.0)
    stop = start(workload)
    poll(lambda: workload.stats()["chunks"] >= 1 and len(workload_threads()) >= 2, "chunks in flight")

    stop_and_join(stop)

    assert workload_threads() == []
    stats = workload.stats()
    assert stats == {name: expected_from(prefix(workload, stats["tasks"], 3), 3).stats[name] for name in stats}
    assert set(scrape()["agent_active_tasks"].values()) == {0.0}


def test_a_run_stopped_before_it_starts_only_allocates() -> None:
    """With stop already set, run() sets the containers' limits and starts no task."""
    eddie_otel.configure(serve=False)
    workload = Workload(seed=1, agents=4)
    stop = threading.Event()
    stop.set()
    workload.run(stop)
    samples = scrape()
    assert workload.stats() == dict.fromkeys(workload.stats(), 0)
    assert len(by_label(samples, "docker_container_cpu_limit", "container")) == 4
    assert "task_execution_seconds_count" not in samples


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"agents": 0}, "agents must be between 1 and 100, not 0"),
        ({"agents": 101}, "agents must be between 1 and 100, not 101"),
        ({"agents": "4"}, "agents must be an integer, not str"),
        ({"speed": 0}, "speed must be a finite number above 0, not 0"),
        ({"speed": -1.5}, "speed must be a finite number above 0, not -1.5"),
        ({"speed": math.inf}, "speed must be a finite number above 0, not inf"),
        ({"speed": math.nan}, "speed must be a finite number above 0, not nan"),
        ({"seed": 1.5}, "seed must be an integer, not float"),
        ({"seed": True}, "seed must be an integer, not bool"),
    ],
)
def test_bad_arguments_name_the_field(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Workload(**arguments)  # type: ignore[arg-type]


def test_with_tracing_each_task_is_one_tree_of_fallback_and_agent_spans(
    start: Callable[[Workload], threading.Event],
) -> None:
    _, exporter = configure_traced()
    workload = Workload(seed=7, agents=5, speed=40.0)
    stop = start(workload)
    poll(lambda: workload.stats()["merges"] >= 3, "3 merges")
    stop_and_join(stop)

    records = spans(exporter)
    by_id = {record.span_id: record for record in records}
    levels = [record for record in records if record.name.startswith("fallback task-") and "." not in record.name]
    assert levels, [record.name for record in records]
    for record in records:
        if record.name.startswith("invoke_agent") and record.attributes["eddie.stage"] != "chunk":
            # A task's span is a child of its fallback span.
            assert by_id[record.parent_id or 0].name.startswith("fallback task-")
        elif record.name.startswith("invoke_agent"):
            # A chunk's span is a child of the split level that ran it, at that level's depth.
            parent = by_id[record.parent_id or 0]
            assert parent.name.startswith("fallback ")
            assert record.attributes["eddie.fallback.depth"] == parent.attributes["eddie.fallback.depth"]
    split = [record for record in records if any(name == "eddie.split" for name, _ in record.events)]
    merged = [record for record in records if any(name == "eddie.merge" for name, _ in record.events)]
    assert split
    assert merged
