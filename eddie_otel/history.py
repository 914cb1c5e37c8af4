"""A bounded in-memory history, from which the summary computes windows and percentiles.

Windows come from snapshots of the exact cumulative series, one per 10-second
bucket over the last hour: the count over a window is the total now minus the
total at the window's first snapshot. A snapshot is taken by the first record of
a bucket, before that record counts, so windows are exact to the bucket and the
hot path pays one comparison. Durations are kept per stage in a fixed-size
ring (the last SAMPLE_SIZE) for exact recent percentiles, and successful ones in
another (the last SUCCESS_SAMPLE_SIZE), which the recommended timeout reads.

The size does not grow with time or with the number of events: only with the
number of distinct stages and agents, which the label cap bounds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from eddie_otel.catalogue import AGENT_TASKS_EXECUTED, METRICS, Kind
from eddie_otel.store import Store

__all__ = ["BUCKET_SECONDS", "HOUR_SECONDS", "SAMPLE_SIZE", "SUCCESS_SAMPLE_SIZE", "History"]

BUCKET_SECONDS = 10.0
HOUR_SECONDS = 3600.0
_SNAPSHOTS = int(HOUR_SECONDS // BUCKET_SECONDS) + 1
# Recent durations kept per stage: enough for an exact p99 over the last
# thousand tasks, 32 KiB a stage.
SAMPLE_SIZE = 1024
# Recent successful durations kept per stage, what the recommended timeout is computed from (failures,
# a timed-out task's above all, never count): the last thousand.
SUCCESS_SAMPLE_SIZE = 1000
_COUNTERS = tuple(metric for metric in METRICS if metric.kind is Kind.COUNTER)


class _Snapshot:
    __slots__ = ("agents", "epoch", "totals")

    def __init__(self, epoch: int, totals: dict[str, float], agents: dict[str, float]) -> None:
        self.epoch = epoch
        self.totals = totals
        self.agents = agents


class History:
    """Snapshots of the counters per 10-second bucket, and recent durations per stage."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        # The clock reading when the history began: no window covers more than the time since.
        self.started = clock()
        self._store = store
        self._lock = threading.Lock()
        self._snapshots: deque[_Snapshot] = deque(maxlen=_SNAPSHOTS)
        self._samples: dict[str, deque[float]] = {}
        self._successes: dict[str, deque[float]] = {}
        # The clock reading from which the next snapshot is due; read unlocked on the hot path.
        self.next_tick = -1.0

    def tick(self, now: float) -> bool:
        """Snapshot the counters if `now` is in a bucket that has none yet (then True); call before counting.

        It only reads the store: the recorder, whose clock this is, moves the store's own.
        """
        epoch = int(now // BUCKET_SECONDS)
        with self._lock:
            if self._snapshots and self._snapshots[-1].epoch >= epoch:
                return False
            self._snapshots.append(_Snapshot(epoch, self._totals(), self._executed()))
            self.next_tick = (epoch + 1) * BUCKET_SECONDS
            return True

    def _totals(self) -> dict[str, float]:
        """Every counter's total now, by key without `_total`."""
        store = self._store
        return {metric.key: store.of(metric).total() for metric in _COUNTERS}

    def _executed(self) -> dict[str, float]:
        """Tasks and chunks finished so far, per agent."""
        return {key[0]: value for key, value in self._store.of(AGENT_TASKS_EXECUTED).values().items()}

    def sample(self, stage: str) -> deque[float]:
        """The ring of recent durations of `stage`; append to it to record one."""
        ring = self._samples.get(stage)
        if ring is None:
            with self._lock:
                ring = self._samples.setdefault(stage, deque(maxlen=SAMPLE_SIZE))
        return ring

    def successes(self, stage: str) -> deque[float]:
        """The ring of recent successful durations of `stage`; append to it to record one."""
        ring = self._successes.get(stage)
        if ring is None:
            with self._lock:
                ring = self._successes.setdefault(stage, deque(maxlen=SUCCESS_SAMPLE_SIZE))
        return ring

    def successful_durations(self) -> dict[str, list[float]]:
        """The recent successful durations of every stage that has a ring, oldest first."""
        with self._lock:
            rings = list(self._successes.items())
        return {stage: list(ring) for stage, ring in rings}

    def _base(self, seconds: float) -> _Snapshot | None:
        start_epoch = int((self.clock() - seconds) // BUCKET_SECONDS) + 1
        with self._lock:
            for snapshot in self._snapshots:
                if snapshot.epoch >= start_epoch:
                    return snapshot
        return None

    def covered(self, seconds: float) -> float:
        """The part of the last `seconds` that the history has seen: `seconds`, or less while it is younger."""
        return max(0.0, min(seconds, self.clock() - self.started))

    def window(self, seconds: float) -> dict[str, float]:
        """Increase of every counter (key without `_total`) over the last `seconds`, to the bucket."""
        now = self._totals()
        base = self._base(seconds)
        if base is None:
            return dict.fromkeys(now, 0.0)
        # Never below zero: series forgotten since (forget_agent) take their counts with them.
        return {key: max(0.0, value - base.totals.get(key, 0.0)) for key, value in now.items()}

    def agents(self, seconds: float) -> dict[str, float]:
        """Tasks and chunks finished per agent over the last `seconds`, for agents active in it."""
        now = self._executed()
        base = self._base(seconds)
        if base is None:
            return {}
        deltas = {agent: value - base.agents.get(agent, 0.0) for agent, value in now.items()}
        return {agent: delta for agent, delta in deltas.items() if delta > 0}

    def durations(self) -> dict[str, list[float]]:
        """The recent durations of every stage, oldest first."""
        with self._lock:
            rings = list(self._samples.items())
        return {stage: list(ring) for stage, ring in rings}
