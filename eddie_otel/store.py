"""The exact values of every eddie-otel metric, and the one lock that guards them.

Each metric keeps at most `budget` label combinations: a new one past it is recorded
in the metric's overflow series, whose labels are all `other`, and counted in
eddie_otel_series_overflow_total; the exposition keeps its shape.

A value and its lock live together: cells are changed only through the `Store`
methods below, which take the lock once for all the cells of one recorded event
(a finished task updates up to five series at once, and one acquisition is
cheaper than five). Readers take consistent snapshots under the same lock.

Counters and gauges are one float `Cell` per label-value tuple; a running count (an
up-down gauge) is a `RunningCell`, the set of calls started and not finished, which a
call joins without the lock. A plain success (the common end of a decorated call) is
counted without the lock too: its duration is appended to its site's `Tally`, which the
store adds into the cells under the lock before anything reads them. Histograms are
one `HistogramCell` per tuple: a count per bucket (`le` inclusive, as Prometheus
puts a value on a boundary), count, sum, min and max, and room for one exemplar
per bucket. The telemetry layer exports these snapshots to every reader.
"""

from __future__ import annotations

import bisect
import builtins
import math
import operator
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Generic, Protocol, TypeVar

from eddie_otel.catalogue import SERIES_OVERFLOW, Kind, Metric
from eddie_otel.labels import OTHER

__all__ = [
    "Cell",
    "Counted",
    "Exemplar",
    "HistogramCell",
    "HistogramSeries",
    "Receipt",
    "RunningCell",
    "Series",
    "Store",
    "Tally",
]

# The labels of a series of one agent.
AGENT_ONLY = ("agent",)
# The self-metric that counts combinations folded into an overflow series.
OVERFLOW_METRIC = SERIES_OVERFLOW.prometheus_name


class Cell:
    """One exact value of one counter or gauge series; changed only by its `Store`."""

    __slots__ = ("touched", "value")

    def __init__(self) -> None:
        self.value: float = 0.0
        # The store's coarse clock when a gauge was last set: what the series TTL reads.
        self.touched = 0.0


class RunningCell(Cell):
    """The running count of an up-down gauge (agent_active_tasks): the calls started and not finished.

    A call joins `running` as it starts, with one `set.add`: a single step, whole for other threads
    and for a signal handler, taken without the store's lock; it leaves as it finishes. The count
    is read as `value`, the number of calls in it, and a call knows whether it was counted by
    being in it.
    """

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.touched = 0.0
        self.running: set[object] = set()

    @property
    def value(self) -> float:
        """The number of calls running."""
        return float(len(self.running))

    @value.setter
    def value(self, value: float) -> None:
        raise AttributeError("a running count changes only as calls start and finish")


class Exemplar:
    """A sampled observation and the span it came from."""

    __slots__ = ("span_id", "time_unix_nano", "trace_id", "value")

    def __init__(self, value: float, time_unix_nano: int, trace_id: int, span_id: int) -> None:
        self.value = value
        self.time_unix_nano = time_unix_nano
        self.trace_id = trace_id
        self.span_id = span_id


class HistogramCell:
    """One exact histogram series: per-bucket counts (the last is +Inf), count, sum, min, max, exemplars."""

    __slots__ = ("bounds", "count", "counts", "exemplars", "maximum", "minimum", "start_unix_nano", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.exemplars: list[Exemplar | None] | None = None
        self.start_unix_nano = time.time_ns()


class Receipt(Protocol):
    """What one recorded call has changed in the store, set under the store's lock with the change.

    A caller interrupted by an exception (a signal handler's) reads `done` to know, without
    doubt, whether its finish was counted (whether its start was is whether it is in its running
    count). Its maker sets it False first (a decorated call's record is one: the field is a slot).
    """

    done: bool


# The cells one finished call adds one to: up to three, None where there is none, so that
# `Store.finish` updates them with no loop.
Counted = tuple[Cell | None, Cell | None, Cell | None]

# A tally's pending successes are added into its cells by the call that brings them to this many.
FOLD_AT = 256


class Tally:
    """Successes of one kind of call and set of labels, counted but not yet added into the cells.

    `pending` holds their durations. A success joins it with one `list.append`, a single step,
    whole for other threads and for a signal handler, taken without the store's lock; `Store.fold`
    adds what is pending into the cells (computed without the lock, changed under it), before
    every read and whenever `pending` reaches FOLD_AT. What is pending is counted: a read never
    sees the cells without what was pending when it began.

    One success adds one to each of `counted` (None where there is none) and its duration to
    `histogram`. `running` is the running count its decorated calls leave after joining
    `pending`: a tally whose cells were dropped is kept while a call that may still join it runs.
    """

    __slots__ = ("counted", "histogram", "pending", "running", "version")

    def __init__(self, counted: Counted, histogram: HistogramCell, running: RunningCell | None) -> None:
        self.counted = counted
        self.histogram = histogram
        self.running = running
        # Moved on by each fold's change (and by `Store.clear`): a fold computed from an older one is dropped.
        self.version = 0
        self.pending: list[float] = []


C = TypeVar("C", Cell, HistogramCell)
# Folded combinations remembered per metric, so that each is counted once in the overflow self-metric.
_MAX_FOLDED = 10_000


class _Cells(Generic[C]):
    """The cells of one metric, one per label-value tuple (in catalogue label order), created on first use."""

    __slots__ = ("_cells", "_folded", "_lock", "_store", "attributes", "metric")

    def __init__(self, metric: Metric, store: Store) -> None:
        self.metric: Metric = metric
        self._store: Store = store
        self._lock = store.lock
        self._cells: dict[tuple[str, ...], C] = {}
        # Combinations folded into the overflow series, each counted once in the overflow self-metric
        # (at most `_MAX_FOLDED` remembered: past that, the memory starts over).
        self._folded: dict[tuple[str, ...], C] = {}
        self.attributes: dict[tuple[str, ...], Mapping[str, str]] = {}

    def cell(self, key: tuple[str, ...]) -> C:
        """The cell for label values `key`; past the store's series budget, the metric's overflow cell."""
        cell = self._cells.get(key)
        if cell is None:
            cell = self._folded.get(key)
            if cell is None:
                with self._lock:
                    cell = self._cell_locked(key)
        return cell

    def _new(self) -> C:
        raise NotImplementedError

    def _cell_locked(self, key: tuple[str, ...]) -> C:
        cell = self._cells.get(key)
        if cell is not None:
            return cell
        if len(self._cells) >= self._store.budget and key:
            folded = self._folded.get(key)
            if folded is not None:
                return folded
            self._store._overflowed(self.metric.prometheus_name)
            if len(self._folded) >= _MAX_FOLDED:
                self._folded.clear()
            overflow = (OTHER,) * len(key)
            cell = self._cells.get(overflow)
            if cell is None:
                self.attributes[overflow] = dict(zip(self.metric.labels, overflow, strict=True))
                cell = self._cells[overflow] = self._new()
            self._folded[key] = cell
            return cell
        self.attributes[key] = dict(zip(self.metric.labels, key, strict=True))
        cell = self._cells[key] = self._new()
        return cell

    def _drop_locked(self, keys: Iterable[tuple[str, ...]]) -> int:
        dropped = 0
        for key in list(keys):
            # A folded combination of a forgotten value counts anew if it comes back.
            self._folded.pop(key, None)
            if self._cells.pop(key, None) is not None:
                self.attributes.pop(key, None)
                dropped += 1
                if key and all(value == OTHER for value in key):
                    # The overflow series itself went: no folded combination may point at it.
                    self._folded.clear()
        return dropped

    def __len__(self) -> int:
        return len(self._cells)


class Series(_Cells[Cell]):
    """The cells of one counter or gauge; `refresh`, when set, brings a gauge computed when read up to date."""

    __slots__ = ("refresh",)

    def __init__(self, metric: Metric, store: Store) -> None:
        super().__init__(metric, store)
        # Called (without the lock) before every read: a gauge computed at scrape time, never on the hot path.
        self.refresh: Callable[[], None] | None = None

    def _new(self) -> Cell:
        cell = RunningCell() if self.metric.up_down else Cell()
        cell.touched = self._store.now
        return cell

    def running(self, key: tuple[str, ...]) -> RunningCell:
        """The running count for label values `key` (of an up-down metric; else a TypeError)."""
        cell = self.cell(key)
        if not isinstance(cell, RunningCell):
            raise TypeError(f"{self.metric.prometheus_name} is not an up-down metric")
        return cell

    def values(self) -> dict[tuple[str, ...], float]:
        """A consistent snapshot of every series."""
        if self.refresh is not None:
            self.refresh()
        self._store.settle()
        with self._lock:
            return {key: cell.value for key, cell in self._cells.items()}

    def items(self) -> list[tuple[Mapping[str, str], float]]:
        """A consistent snapshot of every series as (attributes, value)."""
        if self.refresh is not None:
            self.refresh()
        self._store.settle()
        with self._lock:
            attributes = self.attributes
            return [(attributes[key], cell.value) for key, cell in self._cells.items()]

    def total(self) -> float:
        """The sum over every series."""
        self._store.settle()
        with self._lock:
            return sum(cell.value for cell in self._cells.values())


class HistogramSeries(_Cells[HistogramCell]):
    """The cells of one histogram."""

    __slots__ = ("bounds",)

    def __init__(self, metric: Metric, store: Store) -> None:
        super().__init__(metric, store)
        self.bounds: tuple[float, ...] = tuple(metric.buckets or ())

    def _new(self) -> HistogramCell:
        return HistogramCell(self.bounds)

    def snapshot(self) -> list[tuple[tuple[str, ...], int, list[int], int, float, float, float, list[Exemplar | None]]]:
        """Each series as (key, start, bucket counts, count, sum, min, max, exemplars), taken under the lock."""
        self._store.settle()
        with self._lock:
            return [
                (
                    key,
                    cell.start_unix_nano,
                    list(cell.counts),
                    cell.count,
                    cell.total,
                    cell.minimum,
                    cell.maximum,
                    list(cell.exemplars) if cell.exemplars is not None else [],
                )
                for key, cell in self._cells.items()
            ]


class Store:
    """Every exact series of the catalogue and the lock that guards them all."""

    def __init__(self, metrics: Iterable[Metric], budget: int = 2000) -> None:
        self.lock = threading.Lock()
        # Label combinations kept per metric; a new one past it goes to the overflow series.
        self.budget = budget
        # A coarse clock (seconds, moved on by `tick`) that stamps gauge updates for the series TTL.
        self.now = 0.0
        # The Unix time read at the last `tick`: what an agent's last-seen gauge is set to (coarse,
        # so that stamping it costs one store under the lock a call takes anyway, and no clock read).
        self.wall = time.time()
        # The start of every cumulative counter and gauge series exported from here.
        self.started_unix_nano = time.time_ns()
        self.series: dict[str, Series] = {}
        self.histograms: dict[str, HistogramSeries] = {}
        # Every tally, by the cells it counts into; and those whose cells were dropped, kept while a
        # call that may join them runs.
        self._tallies: dict[tuple[HistogramCell | Cell | None, ...], Tally] = {}
        self._orphans: list[Tally] = []
        for metric in metrics:
            if metric.kind is Kind.HISTOGRAM:
                self.histograms[metric.prometheus_name] = HistogramSeries(metric, self)
            else:
                self.series[metric.prometheus_name] = Series(metric, self)

    def of(self, metric: Metric) -> Series:
        """The cells of the counter or gauge `metric` (a catalogue constant, such as `TASK_SPLIT`)."""
        return self.series[metric.prometheus_name]

    def histogram(self, metric: Metric) -> HistogramSeries:
        """The cells of the histogram `metric` (a catalogue constant, such as `TASK_EXECUTION`)."""
        return self.histograms[metric.prometheus_name]

    def _overflowed(self, metric_name: str) -> None:
        # Called with the lock held: counts into the self-metric without taking it again.
        series = self.series.get(OVERFLOW_METRIC)
        if series is not None and metric_name != OVERFLOW_METRIC:
            series._cell_locked((metric_name,)).value += 1

    # -------------------------------------------------------------- changes

    # Every change is one `with self.lock:` around straight-line code: no call and no loop
    # inside. A Python signal handler runs only where the interpreter checks for one (calls,
    # backward jumps), so an exception it raises (a SIGALRM deadline, Ctrl-C) arrives before
    # the lock is taken or after it is released, never in the middle: no lock is left held
    # and no change is half-made. (`lock.acquire()` then `try:` has such a check in between.)
    # What can be computed without the lock (a bucket's index) is computed before. Two changes
    # are made without it, each one C-level step: a call's start joins its running count, and a
    # plain success joins its tally (`succeed`). A tally is added into the cells in the same way:
    # computed without the lock, then changed under it in straight-line code (`fold`).

    def add(self, cell: Cell, amount: float = 1.0, seen: Cell | None = None) -> None:
        """Add `amount` to one cell; stamp `seen` (an agent's last-seen gauge) with the coarse Unix time."""
        with self.lock:
            cell.value += amount
            if seen is not None:
                seen.value = self.wall
                seen.touched = self.now

    def add_pair(
        self, first: Cell, first_amount: float, second: Cell, second_amount: float, seen: Cell | None = None
    ) -> None:
        """Add to two cells at once (a split: splits and chunks; a merge: chunks and duplicates); stamp `seen`."""
        with self.lock:
            first.value += first_amount
            second.value += second_amount
            if seen is not None:
                seen.value = self.wall
                seen.touched = self.now

    def seen(self, seen: Cell, gauge: Cell | None = None, value: float = 0.0) -> None:
        """Stamp an agent's last-seen gauge `seen` with the coarse Unix time; set `gauge` (its capacity) to `value`."""
        with self.lock:
            seen.value = self.wall
            seen.touched = self.now
            if gauge is not None:
                gauge.value = value
                gauge.touched = self.now

    def observe(self, histogram: HistogramCell, value: float, seen: Cell | None = None) -> None:
        """Put `value` into `histogram` (a chunk's queue wait); stamp `seen`."""
        index = bisect.bisect_left(histogram.bounds, value)
        with self.lock:
            histogram.counts[index] += 1
            histogram.count += 1
            histogram.total += value
            if value < histogram.minimum:
                histogram.minimum = value
            if value > histogram.maximum:
                histogram.maximum = value
            if seen is not None:
                seen.value = self.wall
                seen.touched = self.now

    def usage(
        self,
        input_cell: Cell,
        input_tokens: float,
        output_cell: Cell,
        output_tokens: float,
        cost_cell: Cell | None,
        fallback_cell: Cell | None,
        cost: float,
        seen: Cell,
    ) -> None:
        """Model usage: tokens into their two cells, `cost` into `cost_cell` and `fallback_cell` (each None: not)."""
        with self.lock:
            input_cell.value += input_tokens
            output_cell.value += output_tokens
            if cost_cell is not None:
                cost_cell.value += cost
            if fallback_cell is not None:
                fallback_cell.value += cost
            seen.value = self.wall
            seen.touched = self.now

    def set(self, cell: Cell, value: float) -> None:
        """Set one gauge cell to `value`."""
        with self.lock:
            cell.value = value
            cell.touched = self.now

    def set_pair(
        self, first: Cell, first_value: float, second: Cell, second_value: float, counted: Cell | None = None
    ) -> None:
        """Set two gauge cells at once (a container's CPU and memory limits), and add one to `counted`."""
        with self.lock:
            first.value = first_value
            first.touched = self.now
            second.value = second_value
            second.touched = self.now
            if counted is not None:
                counted.value += 1

    def raise_to(self, cell: Cell, value: float) -> None:
        """Set a counter cell to `value`, a cumulative count read elsewhere (the Docker Engine's), never lowering it."""
        with self.lock:
            if value > cell.value:
                cell.value = value

    def discard(self, series: Series, key: tuple[str, ...]) -> None:
        """Drop the one series `key` of `series` (a limit that was removed); an overflow series stays."""
        cells = series._cells
        attributes = series.attributes
        overflow = (OTHER,) * len(key)
        with self.lock:
            if key != overflow and key in cells:
                del cells[key]
                del attributes[key]

    def start(self, active: RunningCell, call: object, seen: Cell | None = None) -> None:
        """A task or chunk started on an agent: `call` joins `active`, its running count; stamp `seen`.

        No lock: joining is one `set.add` (whole for threads and signals alike), and a stamp is a
        store of its own that a snapshot reads before or after. Not stamped for the TTL: a running
        count is never dropped while it is not zero, and `finish` stamps it when it may become zero.
        """
        active.running.add(call)
        if seen is not None:
            seen.value = self.wall
            seen.touched = self.now

    def finish(
        self,
        active: RunningCell | None,
        counted: Counted,
        histogram: HistogramCell | None,
        seconds: float,
        exemplar: Exemplar | None = None,
        receipt: Receipt | None = None,
        seen: Cell | None = None,
        extra: Cell | None = None,
        extra_amount: float = 0.0,
    ) -> None:
        """A task or chunk finished: `receipt` leaves `active`, one more in each `counted`, `seconds` into `histogram`.

        `seen` (the agent's last-seen gauge) is stamped with the coarse Unix time; `extra_amount` goes
        into `extra` (a split task's fallback outcome, a fallback chunk's seconds).
        `receipt.done` says, under the same lock, that all of it happened. Leaving the running count
        comes first, outside the lock, and may be repeated: a finish interrupted between the two is
        made again whole.
        """
        first, second, third = counted
        if active is not None:
            active.running.discard(receipt)
        index = -1
        fresh: list[Exemplar | None] | None = None
        if histogram is not None:
            index = bisect.bisect_left(histogram.bounds, seconds)
            if exemplar is not None and histogram.exemplars is None:
                fresh = [None] * len(histogram.counts)
        with self.lock:
            if active is not None:
                active.touched = self.now
            if first is not None:
                first.value += 1
            if second is not None:
                second.value += 1
            if third is not None:
                third.value += 1
            if histogram is not None:
                histogram.counts[index] += 1
                histogram.count += 1
                histogram.total += seconds
                if seconds < histogram.minimum:
                    histogram.minimum = seconds
                if seconds > histogram.maximum:
                    histogram.maximum = seconds
                if exemplar is not None:
                    exemplars = histogram.exemplars
                    if exemplars is None:
                        exemplars = histogram.exemplars = fresh
                    if exemplars is not None:
                        exemplars[index] = exemplar
            if seen is not None:
                seen.value = self.wall
                seen.touched = self.now
            if extra is not None:
                extra.value += extra_amount
            if receipt is not None:
                receipt.done = True

    # -------------------------------------------------------------- successes, tallied

    def tally(self, counted: Counted, histogram: HistogramCell, running: RunningCell | None) -> Tally:
        """The tally of successes counted into `counted` and `histogram` (one per set of cells), made on first use.

        `running` is the running count its decorated calls join.
        """
        key = (histogram, *counted)
        with self.lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = Tally(counted, histogram, running)
            elif running is not None:
                tally.running = running
            return tally

    def succeed(
        self,
        tally: Tally,
        seconds: float,
        active: RunningCell | None = None,
        receipt: Receipt | None = None,
        seen: Cell | None = None,
    ) -> None:
        """A success after `seconds`, counted by joining `tally`; `receipt` leaves `active`; stamp `seen`.

        No lock: joining is one `list.append`. `receipt.done` is set just before it, with no point
        between the two where a signal handler can run (one is run after a call, not before), so
        a caller interrupted after either finds both made. It leaves the running count after
        joining the tally: while a call is running, the tally it will join is kept.
        """
        if receipt is not None:
            receipt.done = True
        pending = tally.pending
        pending.append(seconds)
        if active is not None:
            active.running.discard(receipt)
        if seen is not None:
            seen.value = self.wall
            seen.touched = self.now
        if len(pending) >= FOLD_AT:
            self.fold(tally)

    def leave(self, active: RunningCell, receipt: Receipt) -> None:
        """`receipt` leaves `active` (a call interrupted after its success was counted, before it left)."""
        active.running.discard(receipt)

    def fold(self, tally: Tally) -> bool:
        """Add what `tally` has pending into its cells; False if another fold of it came first.

        Computed without the lock; the change is then made under it in straight-line code with no
        call (see "changes" above), unless another fold of the tally came first (its `version`
        moved on: that fold took the batch, and what it left waits for the next). An exception
        raised into the computing (a signal handler's) leaves the tally and the cells as they were.
        """
        version = tally.version
        pending = tally.pending
        batch = pending[:]  # copied after reading the version: a fold made in between is seen below
        count = len(batch)
        if not count:
            return True
        histogram = tally.histogram
        ordered = sorted(batch)
        low, high = ordered[0], ordered[-1]
        total = math.fsum(batch)
        added = [0] * len(histogram.counts)
        start = 0
        for index, bound in enumerate(histogram.bounds):
            # A bucket counts the values up to its bound, inclusive (bisect_left of each into the bounds).
            end = bisect.bisect_right(ordered, bound, start)
            added[index] = end - start
            start = end
        added[-1] = count - start
        buckets = histogram.counts
        # Read as the change is made (C-level, no Python code): what `finish` added meanwhile is kept.
        summed = map(operator.add, buckets, added)
        first, second, third = tally.counted
        with self.lock:
            done = tally.version == version
            if done:
                tally.version = version + 1
                del pending[:count]
                buckets[:] = summed
                histogram.count += count
                histogram.total += total
                if low < histogram.minimum:
                    histogram.minimum = low
                if high > histogram.maximum:
                    histogram.maximum = high
                if first is not None:
                    first.value += count
                if second is not None:
                    second.value += count
                if third is not None:
                    third.value += count
        return done

    def settle(self) -> None:
        """Add what every tally has pending into its cells: what every read of the store does first.

        A success that ended before the read began is in what it reads.
        """
        orphans = self._orphans
        for tally in (*self._tallies.copy().values(), *orphans):
            # Until a fold of its own goes through: one that another fold came before may have left
            # successes that ended before this read began.
            while tally.pending and not self.fold(tally):
                pass
        if orphans:
            # Kept while a call that may still join it runs (a call leaves its running count after joining).
            kept = [
                tally for tally in orphans if tally.pending or (tally.running is not None and tally.running.running)
            ]
            if len(kept) != len(orphans):
                with self.lock:
                    if self._orphans is orphans:
                        self._orphans = kept

    def _orphan_locked(self, gone: AbstractSet[object]) -> None:
        """Tallies counting into a dropped cell (in `gone`) count into the others only, kept while needed."""
        for key, tally in list(self._tallies.items()):
            if any(cell in gone for cell in key if cell is not None):
                del self._tallies[key]
                first, second, third = tally.counted
                tally.counted = (
                    None if first in gone else first,
                    None if second in gone else second,
                    None if third in gone else third,
                )
                if tally.histogram in gone:
                    tally.histogram = HistogramCell(tally.histogram.bounds)
                self._orphans = [*self._orphans, tally]

    # -------------------------------------------------------------- removals

    def _families(self) -> list[_Cells[Cell] | _Cells[HistogramCell]]:
        return [*self.histograms.values(), *self.series.values()]

    def size(self) -> int:
        """The number of series of every metric."""
        return sum(len(family) for family in self._families())

    def keys(self) -> frozenset[tuple[str, tuple[str, ...]]]:
        """Every series as (metric name, label values)."""
        with self.lock:
            return frozenset(
                (family.metric.prometheus_name, key) for family in self._families() for key in family._cells
            )

    def forget(self, label: str, value: str) -> int:
        """Drop every series whose `label` is `value`, in every metric; the number dropped."""
        dropped = 0
        self.settle()
        with self.lock:
            # Cells compare by identity.
            gone: builtins.set[object] = builtins.set()
            for family in self._families():
                if label in family.metric.labels:
                    index = family.metric.labels.index(label)
                    keys = [key for key in (*family._cells, *family._folded) if key[index] == value]
                    gone.update(cell for key, cell in family._cells.items() if key[index] == value)
                    dropped += family._drop_locked(keys)
            self._orphan_locked(gone)
        return dropped

    def tick(self, now: float) -> None:
        """Move the coarse clock that stamps gauge updates, and read the Unix time that last-seen gauges take."""
        self.now = now
        self.wall = time.time()

    def expire(self, ttl: float) -> int:
        """Drop gauge series not set for `ttl` seconds of the coarse clock; the number dropped.

        A running count (an up-down metric) that is not zero stays: a long task does not touch its gauge.
        So do the other gauges of an agent with calls running (its last sight, its capacity): a call
        longer than `ttl` finishes into them.
        """
        horizon = self.now - ttl
        dropped = 0
        with self.lock:
            busy = {
                key
                for series in self.series.values()
                if series.metric.up_down and series.metric.labels == AGENT_ONLY
                for key, cell in series._cells.items()
                if cell.value != 0
            }
            for series in self.series.values():
                metric = series.metric
                if metric.kind is not Kind.GAUGE:
                    continue
                if metric.up_down:
                    kept = {key for key, cell in series._cells.items() if cell.value != 0}
                else:
                    kept = busy if metric.labels == AGENT_ONLY else set()
                stale = [key for key, cell in series._cells.items() if cell.touched < horizon and key not in kept]
                dropped += series._drop_locked(stale)
        return dropped

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held by a thread that is gone), no series."""
        self.lock = threading.Lock()
        for family in self._families():
            family._lock = self.lock
        self.clear()

    def clear(self) -> None:
        """Forget every series (what `reset()` does for instruments a borrowed provider keeps)."""
        with self.lock:
            # What was pending is forgotten with the cells; a call still running counts into cells of its own.
            for tally in (*self._tallies.values(), *self._orphans):
                tally.version += 1  # a fold being computed now changes nothing
                tally.counted = (None, None, None)
                tally.histogram = HistogramCell(tally.histogram.bounds)
                del tally.pending[:]
            self._tallies.clear()
            self._orphans = []
            for family in self._families():
                family._folded.clear()
                family._drop_locked(family._cells)
