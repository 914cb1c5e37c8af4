"""The exact values of every eddie-otel metric, and the one lock that guards them.

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

from eddie_otel.catalogue import Kind, Metric

__all__ = ["Cell", "Exemplar", "HistogramCell", "HistogramSeries", "Series", "Store"]


class Cell:
    """One exact value of one counter or gauge series; changed only by its `Store`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0.0


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


class Series:
    """The cells of one counter or gauge, one per label-value tuple (in catalogue label order)."""

    __slots__ = ("_cells", "_lock", "attributes", "metric")

    def __init__(self, metric: Metric, lock: threading.Lock) -> None:
        self.metric = metric
        self._lock = lock
        self._cells: dict[tuple[str, ...], Cell] = {}
        self.attributes: dict[tuple[str, ...], Mapping[str, str]] = {}

    def cell(self, key: tuple[str, ...]) -> Cell:
        """The cell for label values `key`, created on first use."""
        cell = self._cells.get(key)
        if cell is None:
            with self._lock:
                cell = self._cells.get(key)
                if cell is None:
                    self.attributes[key] = dict(zip(self.metric.labels, key, strict=True))
                    cell = self._cells[key] = Cell()
        return cell

    def values(self) -> dict[tuple[str, ...], float]:
        """A consistent snapshot of every series."""
        with self._lock:
            return {key: cell.value for key, cell in self._cells.items()}

    def total(self) -> float:
        """The sum over every series."""
        with self._lock:
            return sum(cell.value for cell in self._cells.values())


class HistogramSeries:
    """The cells of one histogram, one per label-value tuple."""

    __slots__ = ("_cells", "_lock", "attributes", "bounds", "metric")

    def __init__(self, metric: Metric, lock: threading.Lock) -> None:
        self.metric = metric
        self.bounds: tuple[float, ...] = tuple(metric.buckets or ())
        self._lock = lock
        self._cells: dict[tuple[str, ...], HistogramCell] = {}
        self.attributes: dict[tuple[str, ...], Mapping[str, str]] = {}

    def cell(self, key: tuple[str, ...]) -> HistogramCell:
        """The histogram cell for label values `key`, created on first use."""
        cell = self._cells.get(key)
        if cell is None:
            with self._lock:
                cell = self._cells.get(key)
                if cell is None:
                    self.attributes[key] = dict(zip(self.metric.labels, key, strict=True))
                    cell = self._cells[key] = HistogramCell(self.bounds)
        return cell

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

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.lock = threading.Lock()
        # The start of every cumulative counter and gauge series exported from here.
        self.started_unix_nano = time.time_ns()
        self.series: dict[str, Series] = {}
        self.histograms: dict[str, HistogramSeries] = {}
        for metric in metrics:
            if metric.kind is Kind.HISTOGRAM:
                self.histograms[metric.prometheus_name] = HistogramSeries(metric, self.lock)
            else:
                self.series[metric.prometheus_name] = Series(metric, self.lock)

    # -------------------------------------------------------------- changes

    def add(self, cell: Cell, amount: float = 1.0) -> None:
        """Add `amount` to one cell."""
        with self.lock:
            cell.value += amount

    def add_all(self, changes: Iterable[tuple[Cell, float]]) -> None:
        """Add each amount to its cell, all under one acquisition of the lock."""
        with self.lock:
            for cell, amount in changes:
                cell.value += amount

    def set(self, cell: Cell, value: float) -> None:
        """Set one gauge cell to `value`."""
        with self.lock:
            cell.value = value

    def start(self, active: Cell) -> None:
        """A task or chunk started on an agent: one more active."""
        with self.lock:
            active.value += 1

    def finish(
        self,
        active: Cell | None,
        counted: Sequence[Cell],
        histogram: HistogramCell | None,
        seconds: float,
        exemplar: Exemplar | None = None,
    ) -> None:
        """A task or chunk finished: one less `active`, one more in each `counted`, `seconds` into `histogram`."""
        with self.lock:
            if active is not None:
                active.value -= 1
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

    def clear(self) -> None:
        """Forget every series (what `reset()` does for instruments a borrowed provider keeps)."""
        with self.lock:
            for series in self.series.values():
                series._cells.clear()
                series.attributes.clear()
            for histogram in self.histograms.values():
                histogram._cells.clear()
                histogram.attributes.clear()
