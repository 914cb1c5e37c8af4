"""The store: inclusive bucket boundaries, histogram count/sum/min/max, exact adds under threads, clear()."""

from __future__ import annotations

import threading

import pytest

from eddie_otel.catalogue import DURATION_BUCKETS, METRICS
from eddie_otel.store import Store

AT_60 = DURATION_BUCKETS.index(60.0)


@pytest.fixture
def store() -> Store:
    return Store(METRICS)


def test_a_value_on_a_boundary_lands_in_that_bucket(store: Store) -> None:
    histogram = store.histograms["task_execution_seconds"].cell(("task",))

    store.finish(None, [], histogram, 60.0)
    assert histogram.counts[AT_60] == 1
    assert sum(histogram.counts) == 1

    store.finish(None, [], histogram, 60.0000001)
    assert DURATION_BUCKETS[AT_60 + 1] == 120.0
    assert histogram.counts[AT_60 + 1] == 1

    store.finish(None, [], histogram, 0.01)
    assert histogram.counts[0] == 1

    store.finish(None, [], histogram, 1800.5)
    assert histogram.counts[-1] == 1
    assert len(histogram.counts) == len(DURATION_BUCKETS) + 1
    assert sum(histogram.counts) == 4


def test_finish_keeps_count_sum_min_and_max(store: Store) -> None:
    histogram = store.histograms["chunk_execution_seconds"].cell(("agent-1",))

    for seconds in (2.0, 0.5, 7.25):
        store.finish(None, [], histogram, seconds)

    assert histogram.count == 3
    assert histogram.total == 9.75
    assert histogram.minimum == 0.5
    assert histogram.maximum == 7.25
    [(key, _, counts, count, total, minimum, maximum, _)] = store.histograms["chunk_execution_seconds"].snapshot()
    assert (key, count, total, minimum, maximum) == (("agent-1",), 3, 9.75, 0.5, 7.25)
    assert counts == histogram.counts


def test_finish_ends_the_active_task_and_counts_it(store: Store) -> None:
    active = store.series["agent_active_tasks"].cell(("agent-1",))
    executed = store.series["agent_tasks_executed_total"].cell(("agent-1",))
    success = store.series["task_success_total"].cell(("task",))

    store.start(active)
    store.start(active)
    store.finish(active, [executed, success], None, 1.0)

    assert store.series["agent_active_tasks"].values() == {("agent-1",): 1.0}
    assert store.series["agent_tasks_executed_total"].values() == {("agent-1",): 1.0}
    assert store.series["task_success_total"].total() == 1.0


def test_add_all_is_exact_under_threads(store: Store) -> None:
    splits = store.series["task_split_total"].cell(("agent-1",))
    chunks = store.series["task_split_chunks_total"].cell(("agent-1",))
    threads, adds = 8, 10_000
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(adds):
            store.add_all([(splits, 1.0), (chunks, 3.0)])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert store.series["task_split_total"].values() == {("agent-1",): threads * adds}
    assert store.series["task_split_chunks_total"].values() == {("agent-1",): 3 * threads * adds}


def test_clear_forgets_every_series(store: Store) -> None:
    store.add(store.series["task_split_total"].cell(("agent-1",)), 2)
    store.set(store.series["docker_container_cpu_limit"].cell(("c1",)), 500)
    store.finish(None, [], store.histograms["task_execution_seconds"].cell(("task",)), 1.0)

    store.clear()

    assert all(series.values() == {} for series in store.series.values())
    assert all(series.attributes == {} for series in store.series.values())
    assert all(histogram.snapshot() == [] for histogram in store.histograms.values())
    # A cell asked for afterwards starts from zero.
    assert store.series["task_split_total"].cell(("agent-1",)).value == 0.0
