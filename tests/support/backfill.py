"""A week of an agent fleet's task series, simulated step by step, as OpenMetrics for `promtool` to backfill.

`Fleet` simulates, per stage and instance, the tasks finished each step: their durations (into
the `task_execution_seconds` histogram with the catalogue's buckets), successes, failures and
timeouts, as an eddie-otel process exposes them: a counter series appears with its first count
(never at 0), a histogram's series with its first observation, the timeout gauge from the start.
`openmetrics()` writes what a Prometheus scraping it every `step` seconds would have stored, for
`promtool tsdb create-blocks-from openmetrics`; `counted()` and `histogram_quantile()` give what
happened in a window, for the expected values of the queries.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from eddie_otel.catalogue import DURATION_BUCKETS

__all__ = ["Fleet", "Series", "Stage", "histogram_quantile"]

# The upper bounds of the histogram's buckets, +Inf last.
BOUNDS: tuple[float, ...] = (*DURATION_BUCKETS, math.inf)


@dataclass(frozen=True)
class Stage:
    """How the tasks of one stage on one instance behave.

    `tasks(time, rng)` is how many finish in the step that ends at `time` (seconds);
    `duration(time, rng)` how long one would take without a timeout: one that would take longer
    than `timeout` is cut off at it (`cutoff`: a little after, the time the cancellation takes),
    counted as a failure (reason TimeoutError) and a timeout event; `failure_share` of the others
    fail (reason ValueError).
    """

    name: str
    instance: str
    timeout: float
    tasks: Callable[[int, random.Random], int]
    duration: Callable[[int, random.Random], float]
    failure_share: float = 0.0
    cutoff: float = 0.5
    agent: str = "worker"


@dataclass
class Series:
    """One series: its labels and its value at each step (None before it appears)."""

    labels: dict[str, str]
    values: list[float | None] = field(default_factory=list)


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in labels.items())


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else f"{value:.1f}"


class Fleet:
    """`stages` simulated from `start` (seconds) every `step` seconds for `steps` steps, for scrape job `job`."""

    def __init__(self, job: str, stages: Sequence[Stage], start: int, step: int, steps: int, seed: int = 7) -> None:
        self.job = job
        self.start = start
        self.step = step
        self.steps = steps
        self.times = [start + i * step for i in range(steps)]
        # family → series
        self.families: dict[str, list[Series]] = {
            "task_execution_seconds": [],
            "task_timeout_seconds": [],
            "task_success": [],
            "task_failure": [],
            "timeout_events": [],
        }
        rng = random.Random(seed)
        for stage in stages:
            self._simulate(stage, rng)

    def _base(self, stage: Stage) -> dict[str, str]:
        return {"job": self.job, "instance": stage.instance, "stage": stage.name}

    def _simulate(self, stage: Stage, rng: random.Random) -> None:
        base = self._base(stage)
        buckets = [0] * len(BOUNDS)  # not cumulative: the count per bucket
        total = 0.0
        successes = 0
        errors = 0
        timeouts = 0
        seen = False
        bucket_rows: list[list[float | None]] = [[] for _ in BOUNDS]
        count_row: list[float | None] = []
        sum_row: list[float | None] = []
        success_row: list[float | None] = []
        error_row: list[float | None] = []
        timeout_row: list[float | None] = []
        for time in self.times:
            for _ in range(stage.tasks(time, rng)):
                wanted = stage.duration(time, rng)
                if wanted > stage.timeout:
                    seconds = stage.timeout + stage.cutoff
                    timeouts += 1
                else:
                    seconds = wanted
                    if rng.random() < stage.failure_share:
                        errors += 1
                    else:
                        successes += 1
                buckets[bisect.bisect_left(BOUNDS, seconds)] += 1
                total += seconds
                seen = True
            cumulative = 0
            for row, count in zip(bucket_rows, buckets, strict=True):
                cumulative += count
                row.append(cumulative if seen else None)
            count_row.append(cumulative if seen else None)
            sum_row.append(total if seen else None)
            # A counter's series appears with its first count, and only then.
            success_row.append(successes or None)
            error_row.append(errors or None)
            timeout_row.append(timeouts or None)
        histogram = self.families["task_execution_seconds"]
        for bound, row in zip(BOUNDS, bucket_rows, strict=True):
            histogram.append(Series({**base, "le": _number(bound)}, row))
        histogram.append(Series({**base, "__suffix__": "_count"}, count_row))
        histogram.append(Series({**base, "__suffix__": "_sum"}, sum_row))
        self.families["task_timeout_seconds"].append(Series(base, [stage.timeout] * self.steps))
        self.families["task_success"].append(Series(base, success_row))
        # A failure is a timeout (reason TimeoutError, also a timeout event) or a ValueError.
        self.families["task_failure"].append(Series({**base, "reason": "ValueError"}, error_row))
        self.families["task_failure"].append(Series({**base, "reason": "TimeoutError"}, timeout_row))
        self.families["timeout_events"].append(
            Series({**base, "agent": stage.agent, "reason": "TimeoutError"}, timeout_row)
        )

    def openmetrics(self) -> str:
        """The series as one OpenMetrics text: a family's samples together, each series' in time order."""
        kinds = {
            "task_execution_seconds": ("histogram", "seconds"),
            "task_timeout_seconds": ("gauge", "seconds"),
            "task_success": ("counter", None),
            "task_failure": ("counter", None),
            "timeout_events": ("counter", None),
        }
        parts: list[str] = []
        for family, series_list in self.families.items():
            kind, unit = kinds[family]
            parts.append(f"# TYPE {family} {kind}\n")
            if unit:
                parts.append(f"# UNIT {family} {unit}\n")
            for series in series_list:
                labels = dict(series.labels)
                suffix = labels.pop("__suffix__", "_bucket" if "le" in labels else "")
                name = family + ("_total" if kind == "counter" else suffix)
                prefix = f"{name}{{{_labels(labels)}}} "
                parts.extend(
                    f"{prefix}{_number(value)} {time}\n"
                    for time, value in zip(self.times, series.values, strict=True)
                    if value is not None
                )
        parts.append("# EOF\n")
        return "".join(parts)

    def select(self, family: str, suffix: str = "", **labels: str) -> Iterable[Series]:
        """The series of `family` (histogram series by `suffix`: _bucket, _count, _sum) whose labels hold `labels`."""
        for series in self.families[family]:
            own = dict(series.labels)
            kind = own.pop("__suffix__", "_bucket" if "le" in own else "")
            if kind == suffix and all(own.get(name) == value for name, value in labels.items()):
                yield series

    def counted(self, series: Series, end: float, window: float) -> float:
        """How much `series` grew in (end - window, end]: its last value by `end` minus its last before the window."""
        return self._value_at(series, end) - self._value_at(series, end - window)

    def _value_at(self, series: Series, at: float) -> float:
        index = bisect.bisect_right(self.times, at) - 1
        value = series.values[index] if index >= 0 else None
        return 0.0 if value is None else value

    def total(self, family: str, end: float, window: float, suffix: str = "", **labels: str) -> float:
        """What the series of `family` matching `labels` counted together in the window."""
        return sum(self.counted(series, end, window) for series in self.select(family, suffix, **labels))

    def quantile(self, q: float, end: float, window: float, **labels: str) -> float:
        """`histogram_quantile(q, ...)` over the buckets' counts in the window, summed over the matching series."""
        by_bound: dict[float, float] = {}
        for series in self.select("task_execution_seconds", "_bucket", **labels):
            bound = float(series.labels["le"])
            by_bound[bound] = by_bound.get(bound, 0.0) + self.counted(series, end, window)
        return histogram_quantile(q, sorted(by_bound.items()))


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) sorted by bound, +Inf last.

    Linear interpolation within the bucket the rank falls in; the lowest bucket starts at 0; a rank in
    the +Inf bucket gives the largest finite bound; NaN without observations.
    """
    if not buckets or not math.isinf(buckets[-1][0]):
        return math.nan
    counts = [count for _bound, count in buckets]
    for index in range(1, len(counts)):  # as Prometheus' ensureMonotonic
        counts[index] = max(counts[index], counts[index - 1])
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next(i for i, count in enumerate([*counts[:-1], math.inf]) if count >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]
    if index == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[index][0], counts[index]
    if index > 0:
        start = buckets[index - 1][0]
        count -= counts[index - 1]
        rank -= counts[index - 1]
    return start + (end - start) * (rank / count)
