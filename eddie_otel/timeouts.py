"""Task timeouts: the one a stage runs with, and the one this process recommends for it.

`set_timeout(stage, seconds)` records the timeout the system runs a stage with
(task_timeout_seconds); eddie-otel never enforces it. The recommendation costs nothing on
the hot path: `Site.end` appends each successful task duration to its stage's ring in the
history (the last `SUCCESS_SAMPLE_SIZE`, 1 000; failures, timeouts above all, never count),
and the recommendation is computed from that ring only when it is read: a scrape of
task_timeout_recommended_seconds, the summary, or `recommended_timeout()`.

The recommendation of a stage, with n ≥ EDDIE_OTEL_TIMEOUT_MIN_SAMPLES (50) successful durations
(none before), is

    clamp(max(p99 * EDDIE_OTEL_TIMEOUT_MARGIN, slowest), EDDIE_OTEL_TIMEOUT_MIN_SECONDS, EDDIE_OTEL_TIMEOUT_MAX_SECONDS)

where the p99 is the nearest-rank 99th percentile of the durations: the ⌈0.99·n⌉-th smallest
(no interpolation; always a duration that was observed), and `slowest` the largest of them.
Defaults: a margin of 1.5, within [1 s, 86 400 s].

A stage's timeout is judged (`verdict`) the same way here and in `eddie-otel recommend`:
"not enough data" without enough durations, "too tight" when more than 5 % of its finished
tasks timed out, "too loose" when its p99 is below a third of the timeout, else "ok".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eddie_otel.catalogue import TASK_FAILURE, TASK_SUCCESS, TASK_TIMEOUT, TASK_TIMEOUT_RECOMMENDED, TIMEOUT_EVENTS
from eddie_otel.recording import checks

if TYPE_CHECKING:
    from eddie_otel.config import Settings
    from eddie_otel.history import History
    from eddie_otel.recording import Recorder
    from eddie_otel.store import Store
    from eddie_otel.summary import StageTimeout, Summarised

__all__ = [
    "NOT_ENOUGH_DATA",
    "OK",
    "TOO_LOOSE",
    "TOO_LOOSE_FRACTION",
    "TOO_TIGHT",
    "TOO_TIGHT_SHARE",
    "Policy",
    "install",
    "nearest_rank_p99",
    "recommend",
    "recommended",
    "set_timeout",
    "stage_timeouts",
    "verdict",
]

# A stage whose tasks time out more often than this (timeouts / finished tasks) has too tight a timeout.
TOO_TIGHT_SHARE = 0.05
# A stage whose p99 is below this fraction of its timeout has too loose a timeout.
TOO_LOOSE_FRACTION = 1 / 3
TOO_TIGHT = "too tight"
TOO_LOOSE = "too loose"
OK = "ok"
NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True)
class Policy:
    """How a recommendation is made: the settings' timeout_* values."""

    min_samples: int = 50
    margin: float = 1.5
    min_seconds: float = 1.0
    max_seconds: float = 86_400.0

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        """The policy of `settings` (EDDIE_OTEL_TIMEOUT_* or configure(timeout_...=))."""
        return cls(
            settings.timeout_min_samples,
            settings.timeout_margin,
            settings.timeout_min_seconds,
            settings.timeout_max_seconds,
        )


def nearest_rank_p99(ordered: Sequence[float]) -> float:
    """The nearest-rank 99th percentile of `ordered` (sorted, not empty): its ⌈0.99·n⌉-th smallest value."""
    rank = max(1, math.ceil(99 * len(ordered) / 100))
    return ordered[rank - 1]


def recommend(durations: Sequence[float], policy: Policy = Policy()) -> float | None:
    """The recommended timeout for successful `durations` (seconds), or None with fewer than `min_samples`."""
    if len(durations) < max(1, policy.min_samples):
        return None
    ordered = sorted(durations)
    wanted = max(nearest_rank_p99(ordered) * policy.margin, ordered[-1])
    return min(max(wanted, policy.min_seconds), policy.max_seconds)


def verdict(timeout: float | None, p99: float | None, hit_share: float | None, enough: bool = True) -> str:
    """One word on a stage's timeout: "not enough data", "too tight", "too loose" or "ok".

    Too tight: more than 5 % of its finished tasks timed out (`hit_share`). Too loose: its `p99`
    is below a third of the `timeout` in use. Without enough data (`enough`, or no p99 and no
    hit share) nothing is said.
    """
    if not enough or (p99 is None and hit_share is None):
        return NOT_ENOUGH_DATA
    if hit_share is not None and hit_share > TOO_TIGHT_SHARE:
        return TOO_TIGHT
    if timeout is not None and p99 is not None and p99 < timeout * TOO_LOOSE_FRACTION:
        return TOO_LOOSE
    return OK


class _Recommendations:
    """Refreshes a store's task_timeout_recommended_seconds from a history's rings, each time it is read."""

    def __init__(self, store: Store, history: History, policy: Policy) -> None:
        self._store = store
        self._history = history
        self.policy = policy

    def __call__(self) -> None:
        store = self._store
        series = store.of(TASK_TIMEOUT_RECOMMENDED)
        for stage, durations in self._history.successful_durations().items():
            seconds = recommend(durations, self.policy)
            if seconds is not None:
                store.set(series.cell((stage,)), seconds)


def install(store: Store, history: History, settings: Settings) -> Policy:
    """Compute `store`'s recommended timeouts from `history` whenever they are read; returns the policy."""
    policy = Policy.of(settings)
    store.of(TASK_TIMEOUT_RECOMMENDED).refresh = _Recommendations(store, history, policy)
    return policy


def set_timeout(recorder: Recorder, stage: str, seconds: float) -> None:
    """Record that tasks of `stage` run with a timeout of `seconds` (task_timeout_seconds): checked, then set."""
    checks.label("stage", stage)
    value = checks.seconds("seconds", seconds)
    if value <= 0:
        raise ValueError(f"seconds must be above 0, not {seconds}")
    if not recorder.enabled:
        return
    store = recorder.telemetry.store
    store.set(store.of(TASK_TIMEOUT).cell((recorder.bound("stage", stage),)), value)


def recommended(history: History, policy: Policy, stage: str, default: float | None = None) -> float | None:
    """The recommendation for `stage` from `history` (computed now), or `default` while there is none."""
    if not isinstance(stage, str):
        raise ValueError(f"stage must be a string, not {type(stage).__name__}")
    durations = history.successful_durations().get(stage)
    value = None if durations is None else recommend(durations, policy)
    return default if value is None else value


def stage_timeouts(runtime: Summarised) -> dict[str, StageTimeout]:
    """The summary's `timeouts`: per stage, the timeout in use, the recommendation and one word on the timeout.

    Stages with a timeout set or a successful task. The hit share is since start: the stage's
    timeout events over its finished tasks (successes and failures).
    """
    store = runtime.telemetry.store
    policy = runtime.timeout_policy
    in_use = {key[0]: value for key, value in store.of(TASK_TIMEOUT).values().items()}
    successes = runtime.history.successful_durations()
    finished: dict[str, float] = {}
    for key, value in [*store.of(TASK_SUCCESS).values().items(), *store.of(TASK_FAILURE).values().items()]:
        finished[key[0]] = finished.get(key[0], 0.0) + value
    hits: dict[str, float] = {}
    for key, value in store.of(TIMEOUT_EVENTS).values().items():
        hits[key[1]] = hits.get(key[1], 0.0) + value
    stages: dict[str, StageTimeout] = {}
    for stage in sorted(in_use.keys() | {stage for stage, durations in successes.items() if durations}):
        durations = successes.get(stage, [])
        p99 = nearest_rank_p99(sorted(durations)) if durations else None
        done = finished.get(stage, 0.0)
        share = hits.get(stage, 0.0) / done if done > 0 else None
        recommendation = recommend(durations, policy)
        timeout = in_use.get(stage)
        stages[stage] = {
            "timeout_seconds": None if timeout is None else _whole(timeout),
            "recommended_seconds": recommendation,
            "samples": len(durations),
            "p99": p99,
            "hit_share": share,
            "reason": verdict(timeout, p99, share, recommendation is not None),
        }
    return stages


def _whole(value: float) -> float:
    return int(value) if float(value).is_integer() else value
