"""History: one snapshot per 10-second bucket, window and per-agent increases, the ring of recent durations."""

from __future__ import annotations

import pytest

from eddie_otel.catalogue import METRICS
from eddie_otel.history import SAMPLE_SIZE, History
from eddie_otel.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> Store:
    return Store(METRICS)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def history(store: Store, clock: Clock) -> History:
    return History(store, clock=clock)


def split(store: Store, amount: float) -> None:
    store.add(store.series["task_split_total"].cell(("agent-1",)), amount)


def executed(store: Store, agent: str, amount: float) -> None:
    store.add(store.series["agent_tasks_executed_total"].cell((agent,)), amount)


def test_one_snapshot_per_bucket(store: Store, clock: Clock, history: History) -> None:
    history.tick(0.0)
    assert history.next_tick == 10.0
    split(store, 1)
    history.tick(9.9)  # same bucket: the snapshot taken at 0 stays
    assert history.next_tick == 10.0
    split(store, 2)
    history.tick(10.0)
    assert history.next_tick == 20.0
    split(store, 4)

    clock.now = 19.0
    assert history.window(10)["task_split"] == 4  # since the snapshot of bucket [10, 20)
    assert history.window(20)["task_split"] == 7  # since the snapshot taken at 0, not one at 9.9


def test_window_is_the_increase_since_the_first_snapshot_inside_it(
    store: Store, clock: Clock, history: History
) -> None:
    history.tick(0.0)
    split(store, 5)
    history.tick(100.0)
    split(store, 7)
    history.tick(250.0)
    split(store, 1)
    store.add(store.series["timeout_events_total"].cell(("agent-1", "task", "timeout")), 3)
    clock.now = 390.0

    assert history.window(300)["task_split"] == 8  # the window starts at 90: base is the snapshot at 100
    assert history.window(3600)["task_split"] == 13
    assert history.window(3600)["timeout_events"] == 3
    assert history.window(100)["task_split"] == 0  # no snapshot after 290
    assert set(history.window(300)) == {metric.key for metric in METRICS if metric.prometheus_name.endswith("_total")}


def test_window_before_any_snapshot_is_zero(store: Store, history: History) -> None:
    split(store, 5)
    assert history.window(300)["task_split"] == 0


def test_agents_gives_per_agent_deltas_of_active_agents(store: Store, clock: Clock, history: History) -> None:
    assert history.agents(300) == {}
    executed(store, "a", 2)
    executed(store, "b", 1)
    history.tick(0.0)
    executed(store, "a", 3)
    history.tick(100.0)
    executed(store, "a", 1)
    executed(store, "c", 4)
    clock.now = 390.0

    assert history.agents(300) == {"a": 1.0, "c": 4.0}
    assert history.agents(3600) == {"a": 4.0, "c": 4.0}


def test_the_sample_ring_keeps_only_the_last_sample_size(history: History) -> None:
    ring = history.sample("task")
    for value in range(SAMPLE_SIZE + 5):
        ring.append(float(value))

    assert history.sample("task") is ring
    assert list(history.sample("task")) == [float(value) for value in range(5, SAMPLE_SIZE + 5)]
    history.sample("chunk").append(1.5)
    assert history.durations() == {"task": list(ring), "chunk": [1.5]}


def test_covered_is_the_time_since_the_history_began_up_to_the_window(store: Store, clock: Clock) -> None:
    clock.now = 500.0
    history = History(store, clock=clock)
    assert history.covered(300) == 0.0
    clock.now = 506.0
    assert history.covered(300) == 6.0
    assert history.covered(3600) == 6.0
    clock.now = 900.0
    assert history.covered(300) == 300.0
    assert history.covered(3600) == 400.0
