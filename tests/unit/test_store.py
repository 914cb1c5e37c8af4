"""The store: inclusive buckets, count/sum/min/max, exact adds under threads, clear, budget, forget, expire, tallies."""

from __future__ import annotations

import math
import random
import threading

import pytest

from eddie_otel.catalogue import DURATION_BUCKETS, METRICS, SELF_METRICS
from eddie_otel.store import FOLD_AT, OVERFLOW_METRIC, Counted, HistogramCell, Store

# No cell counted: a finish that only feeds the histogram.
NONE: Counted = (None, None, None)
AT_60 = DURATION_BUCKETS.index(60.0)


@pytest.fixture
def store() -> Store:
    return Store(METRICS)


def test_a_value_on_a_boundary_lands_in_that_bucket(store: Store) -> None:
    histogram = store.histograms["task_execution_seconds"].cell(("task",))

    store.finish(None, NONE, histogram, 60.0)
    assert histogram.counts[AT_60] == 1
    assert sum(histogram.counts) == 1

    store.finish(None, NONE, histogram, 60.0000001)
    assert DURATION_BUCKETS[AT_60 + 1] == 120.0
    assert histogram.counts[AT_60 + 1] == 1

    store.finish(None, NONE, histogram, 0.01)
    assert histogram.counts[0] == 1

    store.finish(None, NONE, histogram, 1800.5)
    assert histogram.counts[-1] == 1
    assert len(histogram.counts) == len(DURATION_BUCKETS) + 1
    assert sum(histogram.counts) == 4


def test_finish_keeps_count_sum_min_and_max(store: Store) -> None:
    histogram = store.histograms["chunk_execution_seconds"].cell(("agent-1",))

    for seconds in (2.0, 0.5, 7.25):
        store.finish(None, NONE, histogram, seconds)

    assert histogram.count == 3
    assert histogram.total == 9.75
    assert histogram.minimum == 0.5
    assert histogram.maximum == 7.25
    [(key, _, counts, count, total, minimum, maximum, _)] = store.histograms["chunk_execution_seconds"].snapshot()
    assert (key, count, total, minimum, maximum) == (("agent-1",), 3, 9.75, 0.5, 7.25)
    assert counts == histogram.counts


class _Call:
    """A decorated call's record, as the store sees it."""

    done = False


def test_finish_ends_the_active_task_and_counts_it(store: Store) -> None:
    active = store.series["agent_active_tasks"].running(("agent-1",))
    executed = store.series["agent_tasks_executed_total"].cell(("agent-1",))
    success = store.series["task_success_total"].cell(("task",))
    first, second = _Call(), _Call()

    store.start(active, first)
    store.start(active, second)
    store.finish(active, (executed, success, None), None, 1.0, receipt=first)
    # A finish made again (after an interruption) leaves the count as it was.
    store.finish(active, (None, None, None), None, 1.0, receipt=first)

    assert (first.done, second.done) == (True, False)
    assert store.series["agent_active_tasks"].values() == {("agent-1",): 1.0}
    assert store.series["agent_tasks_executed_total"].values() == {("agent-1",): 1.0}
    assert store.series["task_success_total"].total() == 1.0


def test_a_running_count_is_set_only_by_calls_and_only_for_up_down_metrics(store: Store) -> None:
    active = store.series["agent_active_tasks"].running(("agent-1",))
    with pytest.raises(AttributeError, match="running count"):
        active.value = 3.0
    with pytest.raises(TypeError, match="task_split_total is not an up-down metric"):
        store.series["task_split_total"].running(("agent-1",))


def test_add_pair_is_exact_under_threads(store: Store) -> None:
    splits = store.series["task_split_total"].cell(("agent-1",))
    chunks = store.series["task_split_chunks_total"].cell(("agent-1",))
    threads, adds = 8, 10_000
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(adds):
            store.add_pair(splits, 1.0, chunks, 3.0)

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
    store.finish(None, NONE, store.histograms["task_execution_seconds"].cell(("task",)), 1.0)

    store.clear()

    assert all(series.values() == {} for series in store.series.values())
    assert all(series.attributes == {} for series in store.series.values())
    assert all(histogram.snapshot() == [] for histogram in store.histograms.values())
    # A cell asked for afterwards starts from zero.
    assert store.series["task_split_total"].cell(("agent-1",)).value == 0.0


def test_past_the_budget_a_new_combination_shares_the_all_other_cell() -> None:
    store = Store((*METRICS, *SELF_METRICS), budget=2)
    timeouts = store.series["timeout_events_total"]
    first = timeouts.cell(("a0", "s0", "r"))
    timeouts.cell(("a1", "s1", "r"))

    third, fourth = timeouts.cell(("a2", "s2", "r")), timeouts.cell(("a3", "s3", "r"))

    assert third is fourth
    assert timeouts.cell(("a0", "s0", "r")) is first  # a known combination keeps its own cell
    assert set(timeouts.attributes) == {("a0", "s0", "r"), ("a1", "s1", "r"), ("other", "other", "other")}
    assert store.series[OVERFLOW_METRIC].values() == {("timeout_events_total",): 2.0}


def test_forget_drops_the_value_in_every_family_that_has_the_label(store: Store) -> None:
    store.add(store.series["task_split_total"].cell(("gone",)))
    store.add(store.series["timeout_events_total"].cell(("gone", "s", "r")))
    store.finish(None, NONE, store.histograms["chunk_execution_seconds"].cell(("gone",)), 1.0)
    store.add(store.series["task_split_total"].cell(("kept",)))
    store.add(store.series["task_success_total"].cell(("gone",)))  # a stage named like the agent

    assert store.forget("agent", "gone") == 3

    assert store.series["task_split_total"].values() == {("kept",): 1.0}
    assert store.series["timeout_events_total"].values() == {}
    assert store.histograms["chunk_execution_seconds"].snapshot() == []
    assert store.series["task_success_total"].values() == {("gone",): 1.0}


def test_expire_drops_stale_gauges_but_not_a_running_count(store: Store) -> None:
    store.tick(100.0)
    store.set(store.series["docker_container_cpu_limit"].cell(("old",)), 500)
    store.start(store.series["agent_active_tasks"].running(("busy",)), _Call())
    idle = store.series["agent_active_tasks"].running(("idle",))
    call = _Call()
    store.start(idle, call)
    store.finish(idle, NONE, None, 1.0, receipt=call)
    store.add(store.series["task_split_total"].cell(("idle",)))
    for agent in ("busy", "idle"):
        # Seen and said its capacity at 100, nothing since.
        seen = store.series["agent_last_seen_timestamp_seconds"].cell((agent,))
        store.seen(seen, store.series["agent_capacity"].cell((agent,)), 4.0)
    store.tick(150.0)
    store.set(store.series["docker_container_cpu_limit"].cell(("new",)), 250)
    store.tick(200.0)

    # The old limit, the idle agent's running count, last sight and capacity.
    assert store.expire(60.0) == 4

    assert store.series["docker_container_cpu_limit"].values() == {("new",): 250.0}
    assert store.series["agent_active_tasks"].values() == {("busy",): 1.0}
    # An agent with a call running keeps its last sight and capacity: the call finishes into them.
    assert list(store.series["agent_last_seen_timestamp_seconds"].values()) == [("busy",)]
    assert store.series["agent_capacity"].values() == {("busy",): 4.0}
    assert store.series["task_split_total"].values() == {("idle",): 1.0}  # counters never expire


# ------------------------------------------------------------------ tallies


def _task_cells(store: Store, agent: str = "agent-1", stage: str = "task") -> tuple[Counted, HistogramCell]:
    executed = store.series["agent_tasks_executed_total"].cell((agent,))
    success = store.series["task_success_total"].cell((stage,))
    return (executed, success, None), store.histograms["task_execution_seconds"].cell((stage,))


def test_a_tally_counts_what_finish_counts_every_bucket_boundary_included() -> None:
    by_finish, by_tally = Store(METRICS), Store(METRICS)
    counted, histogram = _task_cells(by_finish)
    tally = by_tally.tally(*_task_cells(by_tally), None)
    rng = random.Random(7)
    # Every boundary, a hair either side of it, and values spread over the buckets, shuffled:
    # more than FOLD_AT, so that calls fold the tally as they go and a read adds the rest.
    values = [value for bound in DURATION_BUCKETS for value in (bound, math.nextafter(bound, 0), bound * 1.0000001)]
    values += [rng.uniform(0, 4000) for _ in range(FOLD_AT * 3)]
    rng.shuffle(values)

    for seconds in values:
        by_finish.finish(None, counted, histogram, seconds)
        by_tally.succeed(tally, seconds)

    assert 0 < len(tally.pending) < FOLD_AT  # some are still pending: the reads below must add them
    [(_, _, counts, count, total, low, high, _)] = by_tally.histograms["task_execution_seconds"].snapshot()
    assert tally.pending == []
    assert counts == histogram.counts
    assert (
        (count, low, high)
        == (histogram.count, histogram.minimum, histogram.maximum)
        == (len(values), min(values), max(values))
    )
    # The sum of each batch is exact (math.fsum): at least as close to the true sum as adding one at a time.
    assert abs(total - math.fsum(values)) <= abs(histogram.total - math.fsum(values)) + 1e-9
    assert by_tally.series["agent_tasks_executed_total"].values() == {("agent-1",): float(len(values))}
    assert by_tally.series["task_success_total"].total() == float(len(values))


def test_every_read_adds_what_is_pending_first(store: Store) -> None:
    tally = store.tally(*_task_cells(store), None)
    for seconds in (1.0, 2.0, 3.0):
        store.succeed(tally, seconds)
    executed = store.series["agent_tasks_executed_total"].cell(("agent-1",))
    assert executed.value == 0.0  # not yet added in

    assert store.series["agent_tasks_executed_total"].values() == {("agent-1",): 3.0}
    assert store.series["task_success_total"].items() == [({"stage": "task"}, 3.0)]
    store.succeed(tally, 4.0)
    store.succeed(tally, 5.0)
    assert store.series["task_success_total"].total() == 5.0
    store.succeed(tally, 6.0)
    [(_, _, _, count, total, _, _, _)] = store.histograms["task_execution_seconds"].snapshot()
    assert (count, total) == (6, 21.0)


def test_the_success_that_fills_a_tally_adds_it_in(store: Store) -> None:
    tally = store.tally(*_task_cells(store), None)
    executed = store.series["agent_tasks_executed_total"].cell(("agent-1",))
    for _ in range(FOLD_AT - 1):
        store.succeed(tally, 0.5)
    assert (len(tally.pending), executed.value) == (FOLD_AT - 1, 0.0)

    store.succeed(tally, 0.5)

    assert (len(tally.pending), executed.value) == (0, float(FOLD_AT))


def test_a_success_sets_its_receipt_and_leaves_the_running_count(store: Store) -> None:
    active = store.series["agent_active_tasks"].running(("agent-1",))
    tally = store.tally(*_task_cells(store), active)
    seen = store.series["agent_last_seen_timestamp_seconds"].cell(("agent-1",))
    call = _Call()
    store.start(active, call)
    store.tick(5.0)

    store.succeed(tally, 1.0, active, call, seen)

    assert call.done is True
    assert active.value == 0.0
    assert (seen.value, seen.touched) == (store.wall, 5.0)


def test_tallies_are_exact_under_threads_and_every_read_is_whole(store: Store) -> None:
    tally = store.tally(*_task_cells(store), None)
    histograms = store.histograms["task_execution_seconds"]
    stop = threading.Event()
    torn: list[str] = []

    def read() -> None:
        while not stop.is_set():
            for _, _, counts, count, _, _, _, _ in histograms.snapshot():
                if sum(counts) != count:
                    torn.append(f"buckets {sum(counts)} != count {count}")

    def succeed() -> None:
        for index in range(5_000):
            store.succeed(tally, DURATION_BUCKETS[index % len(DURATION_BUCKETS)])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=succeed) for _ in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stop.set()
    reader.join()

    assert torn == []
    [(_, _, counts, count, _, _, _, _)] = histograms.snapshot()
    # Each writer put index % len(bounds) on that bucket's bound: the bucket it lands in.
    expected = [0] * (len(DURATION_BUCKETS) + 1)
    for index in range(5_000):
        expected[index % len(DURATION_BUCKETS)] += 8
    assert (count, counts) == (40_000, expected)
    assert store.series["task_success_total"].total() == 40_000.0


def test_forget_keeps_the_tally_of_a_running_call_which_then_counts_into_what_is_left(store: Store) -> None:
    active = store.series["agent_active_tasks"].running(("gone",))
    counted, histogram = _task_cells(store, agent="gone")
    tally = store.tally(counted, histogram, active)
    store.succeed(tally, 1.0)
    running = _Call()
    store.start(active, running)

    store.forget("agent", "gone")

    # Its success after the agent was forgotten counts for its stage (the agent's series are gone).
    store.succeed(tally, 2.0, active, running)
    assert store.series["task_success_total"].total() == 2.0
    assert store.series["agent_tasks_executed_total"].values() == {}
    [(_, _, _, count, total, _, _, _)] = store.histograms["task_execution_seconds"].snapshot()
    assert (count, total) == (2, 3.0)
    # With nothing running that could join it, the forgotten tally goes.
    assert store._orphans == []
    # A new tally for the agent counts into its new cells.
    fresh = store.tally(*_task_cells(store, agent="gone"), None)
    assert fresh is not tally
    store.succeed(fresh, 1.0)
    assert store.series["agent_tasks_executed_total"].values() == {("gone",): 1.0}


def test_a_forgotten_tally_stays_while_a_call_that_may_join_it_runs(store: Store) -> None:
    active = store.series["agent_active_tasks"].running(("gone",))
    tally = store.tally(*_task_cells(store, agent="gone"), active)
    running = _Call()
    store.start(active, running)

    store.forget("agent", "gone")
    store.settle()
    assert store._orphans == [tally]

    store.succeed(tally, 2.0, active, running)
    store.settle()
    assert store._orphans == []
    assert store.series["task_success_total"].total() == 1.0


def test_clear_forgets_what_is_pending(store: Store) -> None:
    tally = store.tally(*_task_cells(store), None)
    store.succeed(tally, 1.0)

    store.clear()

    assert store.series["task_success_total"].values() == {}
    assert store.histograms["task_execution_seconds"].snapshot() == []
    assert tally.pending == []


@pytest.mark.parametrize("outer", ["fold", "settle"])
@pytest.mark.parametrize("another_fold", [False, True])
def test_a_fold_keeps_what_changed_while_it_was_computed_and_never_counts_a_batch_twice(
    store: Store, another_fold: bool, outer: str
) -> None:
    tally = store.tally(*_task_cells(store), None)
    histogram = tally.histogram
    failure = store.series["task_failure_total"].cell(("task", "ValueError"))
    for seconds in (0.5, 2.0, 30.0):
        store.succeed(tally, seconds)
    lock = store.lock
    meanwhile = []

    class Lock:
        """The store's lock; the first time it is taken (the fold's change), other work comes first."""

        def __enter__(self) -> None:
            if not meanwhile:
                meanwhile.append(True)
                # Between the fold's computing and its change: a failure is counted into the same
                # buckets, a success joins the tally, and maybe another fold takes the same batch.
                store.lock = lock
                if another_fold:
                    store.fold(tally)
                store.finish(None, (None, failure, None), histogram, 0.5)
                store.succeed(tally, 7.0)
                store.lock = self  # type: ignore[assignment]
            lock.acquire()

        def __exit__(self, *exc_info: object) -> None:
            lock.release()

    store.lock = Lock()  # type: ignore[assignment]
    if outer == "fold":
        assert store.fold(tally) is not another_fold
    else:
        store.settle()
    store.lock = lock

    assert meanwhile == [True]
    # The batch is counted once, by whichever fold changed the cells first; the success that came
    # during the fold waits. A read's settle whose fold another came before tries again (that success
    # then goes in with it); a lone fold leaves it waiting.
    assert tally.pending == ([] if outer == "settle" and another_fold else [7.0])
    store.settle()
    [(_, _, counts, count, total, _, _, _)] = store.histograms["task_execution_seconds"].snapshot()
    # The failure's bucket count, made after the fold read the buckets, is kept.
    assert (count, sum(counts), total) == (5, 5, 40.0)
    assert counts[DURATION_BUCKETS.index(0.5)] == 2
    assert store.series["task_success_total"].total() == 4.0
    assert failure.value == 1.0


def test_a_fold_computes_without_the_lock(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A signal handler can run wherever Python code runs: while the lock is held only by straight-line
    # code, a handler that records (and takes the lock) never waits on its own thread.
    import eddie_otel.store as store_module

    tally = store.tally(*_task_cells(store), None)
    store.succeed(tally, 1.0)
    held = []

    class Math:
        @staticmethod
        def fsum(values: list[float]) -> float:
            held.append(store.lock.locked())
            return math.fsum(values)

    monkeypatch.setattr(store_module, "math", Math)
    store.fold(tally)

    assert held == [False]
    assert tally.pending == []
