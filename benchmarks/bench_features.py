"""What two per-call records of a decorated task cost: the agent's last-seen stamp and the success ring.

A decorated task stamps its agent's agent_last_seen_timestamp_seconds with the store's coarse
Unix time (two stores, no lock), and appends each successful duration to the ring the
recommended timeout is computed from when read. Each is measured by taking it away from one
site and timing the same decorated call with and without it, interleaved in one run (three
stages of one agent, endpoint alone):

  full          the decorator as it ships;
  no last-seen  its site's last-seen cell removed (nothing stamped);
  no ring       its site's success ring removed (nothing appended).

The cost of each is the difference of medians, shown beside the spread (max - min) of the full
variant's own repetitions: a difference inside that spread cannot be told from noise on this
machine. The recommendation itself is computed only when read: the last line times one
`recommended_timeout` read over a full ring, which no decorated call pays.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from typing import Any

import eddie_otel
from benchmarks._common import print_command
from eddie_otel import runtime

CALLS = 20_000
REPEATS = 15
READS = 2_000


def bare() -> int:
    """The trivial function every variant wraps."""
    return 1


def _time(fn: Callable[[], Any], calls: int) -> float:
    """Nanoseconds per call of `fn`."""
    return timeit.timeit(fn, number=calls) / calls * 1e9


def main() -> None:
    print_command("bench_features")
    eddie_otel.reset()
    eddie_otel.configure(serve=False, exporters="prometheus")
    try:
        variants = {
            "full": eddie_otel.task(stage="full", agent="a")(bare),
            "no last-seen": eddie_otel.task(stage="unseen", agent="a")(bare),
            "no ring": eddie_otel.task(stage="unringed", agent="a")(bare),
        }
        for fn in variants.values():
            fn()  # each site exists and is prepared
        recorder = runtime.current().recorder
        recorder.site(True, "unseen", "a").seen = None
        recorder.site(True, "unringed", "a").successes = None
        samples: dict[str, list[float]] = {name: [] for name in ("bare", *variants)}
        for repeat in range(REPEATS + 1):  # the first round is a warm-up
            for name, fn in (("bare", bare), *variants.items()):
                value = _time(fn, CALLS)
                if repeat:
                    samples[name].append(value)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        spread = max(samples["full"]) - min(samples["full"])
        print(f"{CALLS} calls x {REPEATS} interleaved repetitions, medians (ns per call)")
        print(f"  {'variant':14} {'ns/call':>9} {'overhead':>9}")
        for name, value in medians.items():
            print(f"  {name:14} {value:9.0f} {value - medians['bare']:9.0f}")
        for feature, without in (("last-seen stamp", "no last-seen"), ("success ring", "no ring")):
            cost = medians["full"] - medians[without]
            verdict = "within noise" if abs(cost) <= spread else "measurable"
            print(f"  cost of the {feature:16} {cost:6.0f} ns per call (spread of full: {spread:.0f} ns: {verdict})")
        for duration in range(1_000):
            recorder.history.successes("full").append(0.001 * (duration + 1))
        read = _time(lambda: eddie_otel.recommended_timeout("full"), READS)
        print(f"  recommended_timeout, read over a full ring: {read / 1000:.1f} µs per read (no call pays it)")
    finally:
        eddie_otel.reset()
