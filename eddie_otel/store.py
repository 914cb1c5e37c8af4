"""The exact values of every eddie-otel metric, and the one lock that guards them.

Each metric keeps at most `budget` label combinations: a new one past it is recorded
in the metric's overflow series, whose labels are all `other`, and counted in
eddie_otel_series_overflow_total; the exposition keeps its shape.

A value and its lock live together: cells are changed only through the `Store`
methods below, which take the lock once for all the cells of one recorded event
(a finished task updates up to five series at once, and one acquisition is
cheaper than five). Readers take consistent snapshots under the same lock.

Counters and gauges are one float `Cell` per label-value tuple. Histograms are
one `HistogramCell` per tuple: a count per bucket (`le` inclusive, as Prometheus
puts a value on a boundary), count, sum, min and max, and room for one exemplar
per bucket. The telemetry layer exports these snapshots to every reader.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from eddie_otel.catalogue import SERIES_OVERFLOW, Kind, Metric
from eddie_otel.labels import OTHER

__all__ = ["Cell", "Exemplar", "HistogramCell", "HistogramSeries", "Series", "Store"]

# The self-metric that counts combinations folded into an overflow series.
OVERFLOW_METRIC = SERIES_OVERFLOW.prometheus_name


class Cell:
    """One exact value of one counter or gauge series; changed only by its `Store`."""

    __slots__ = ("touched", "value")

    def __init__(self) -> None:
        self.value: float = 0.0
        # The store's coarse clock when a gauge was last set: what the series TTL reads.
        self.touched = 0.0


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


C = TypeVar("C", Cell, HistogramCell)


class _Cells(Generic[C]):
    """The cells of one metric, one per label-value tuple (in catalogue label order), created on first use."""

    __slots__ = ("_cells", "_lock", "_store", "attributes", "metric")

    def __init__(self, metric: Metric, store: Store) -> None:
        self.metric: Metric = metric
        self._store: Store = store
        self._lock = store.lock
        self._cells: dict[tuple[str, ...], C] = {}
        self.attributes: dict[tuple[str, ...], Mapping[str, str]] = {}

    def cell(self, key: tuple[str, ...]) -> C:
        """The cell for label values `key`; past the store's series budget, the metric's overflow cell."""
        cell = self._cells.get(key)
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
            self._store._overflowed(self.metric.prometheus_name)
            key = (OTHER,) * len(key)
            cell = self._cells.get(key)
            if cell is not None:
                return cell
        self.attributes[key] = dict(zip(self.metric.labels, key, strict=True))
        cell = self._cells[key] = self._new()
        return cell

    def _drop_locked(self, keys: Iterable[tuple[str, ...]]) -> int:
        dropped = 0
        for key in list(keys):
            if self._cells.pop(key, None) is not None:
                self.attributes.pop(key, None)
                dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._cells)


class Series(_Cells[Cell]):
    """The cells of one counter or gauge."""

    __slots__ = ()

    def _new(self) -> Cell:
        cell = Cell()
        cell.touched = self._store.now
        return cell

    def values(self) -> dict[tuple[str, ...], float]:
        """A consistent snapshot of every series."""
        with self._lock:
            return {key: cell.value for key, cell in self._cells.items()}

    def items(self) -> list[tuple[Mapping[str, str], float]]:
        """A consistent snapshot of every series as (attributes, value)."""
        with self._lock:
            attributes = self.attributes
            return [(attributes[key], cell.value) for key, cell in self._cells.items()]

    def total(self) -> float:
        """The sum over every series."""
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
        # The start of every cumulative counter and gauge series exported from here.
        self.started_unix_nano = time.time_ns()
        self.series: dict[str, Series] = {}
        self.histograms: dict[str, HistogramSeries] = {}
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

    # Every change takes the lock with acquire()/release() rather than `with`: on the hot path
    # the context-manager protocol costs twice as much as the lock itself (`make bench`).

    def add(self, cell: Cell, amount: float = 1.0) -> None:
        """Add `amount` to one cell."""
        lock = self.lock
        lock.acquire()
        try:
            cell.value += amount
        finally:
            lock.release()

    def add_all(self, changes: Iterable[tuple[Cell, float]]) -> None:
        """Add each amount to its cell, all under one acquisition of the lock."""
        lock = self.lock
        lock.acquire()
        try:
            for cell, amount in changes:
                cell.value += amount
        finally:
            lock.release()

    def set(self, cell: Cell, value: float) -> None:
        """Set one gauge cell to `value`."""
        lock = self.lock
        lock.acquire()
        try:
            cell.value = value
            cell.touched = self.now
        finally:
            lock.release()

    def start(self, active: Cell) -> None:
        """A task or chunk started on an agent: one more active.

        Not stamped for the TTL: a running count is never dropped while it is not zero,
        and `finish` stamps it when it may become zero.
        """
        lock = self.lock
        lock.acquire()
        try:
            active.value += 1
        finally:
            lock.release()

    def finish(
        self,
        active: Cell | None,
        counted: Sequence[Cell],
        histogram: HistogramCell | None,
        seconds: float,
        exemplar: Exemplar | None = None,
    ) -> None:
        """A task or chunk finished: one less `active`, one more in each `counted`, `seconds` into `histogram`."""
        lock = self.lock
        lock.acquire()
        try:
            if active is not None:
                active.value -= 1
                active.touched = self.now
            for cell in counted:
                cell.value += 1
            if histogram is not None:
                index = bisect.bisect_left(histogram.bounds, seconds)
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
                        exemplars = histogram.exemplars = [None] * len(histogram.counts)
                    exemplars[index] = exemplar
        finally:
            lock.release()

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
        with self.lock:
            for family in self._families():
                if label in family.metric.labels:
                    index = family.metric.labels.index(label)
                    dropped += family._drop_locked(key for key in family._cells if key[index] == value)
        return dropped

    def tick(self, now: float) -> None:
        """Move the coarse clock that stamps gauge updates."""
        self.now = now

    def expire(self, ttl: float) -> int:
        """Drop gauge series not set for `ttl` seconds of the coarse clock; the number dropped.

        A running count (an up-down metric) that is not zero stays: a long task does not touch its gauge.
        """
        horizon = self.now - ttl
        dropped = 0
        with self.lock:
            for series in self.series.values():
                if series.metric.kind is not Kind.GAUGE:
                    continue
                keep_busy = series.metric.up_down
                stale = [
                    key
                    for key, cell in series._cells.items()
                    if cell.touched < horizon and not (keep_busy and cell.value != 0)
                ]
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
            for family in self._families():
                family._drop_locked(family._cells)
