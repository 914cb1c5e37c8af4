"""The summary: totals, agents, nearest-rank percentiles, windows and indicators, checked by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

import eddie_otel
from eddie_otel import (
    chunk,
    record_chunk,
    record_docker_allocation,
    record_merge,
    record_split,
    record_task,
    record_timeout,
)
from eddie_otel.catalogue import METRICS, Kind
from eddie_otel.runtime import Runtime
from eddie_otel.summary import Summary, percentile
from tests.support.helpers import NOTHING_SPLIT, drive_history

COUNTER_KEYS = [metric.key for metric in METRICS if metric.kind is Kind.COUNTER]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(configured: Runtime) -> FakeClock:
    """A fake clock at t=1000 s driving a fresh history of the configured runtime."""
    fake = FakeClock(1000.0)
    drive_history(configured, fake)
    return fake


def stamped(result: Summary) -> dict[str, object]:
    """The summary without `generated_at`, after checking that it is an RFC 3339 UTC timestamp of now."""
    rest = dict(result)
    generated_at = rest.pop("generated_at")
    assert isinstance(generated_at, str)
    assert generated_at.endswith("Z")
    when = datetime.fromisoformat(generated_at.removesuffix("Z") + "+00:00")
    assert abs(datetime.now(timezone.utc) - when) < timedelta(seconds=5)
    return rest


def indicators(result: Summary) -> dict[str, tuple[object, object]]:
    """The indicators as {name: (value, ok)}."""
    listed = result["indicators"]
    assert isinstance(listed, list)
    return {item["name"]: (item["value"], item["ok"]) for item in listed}


def test_empty_state(clock: FakeClock) -> None:
    result = eddie_otel.summary()

    zeros = dict.fromkeys(COUNTER_KEYS, 0)
    # The history began at this very instant: the windows cover no time yet, and count nothing.
    empty = {"covered_seconds": 0, "counts": zeros, "rates": dict.fromkeys(COUNTER_KEYS, 0.0)}
    assert stamped(result) == {
        "totals": zeros,
        "agents": {},
        "fallback": NOTHING_SPLIT,
        "latency": {},
        "timeouts": {},
        "windows": {"5m": {"seconds": 300, **empty}, "1h": {"seconds": 3600, **empty}},
        "indicators": [
            {
                "name": "success_rate",
                "window": "1h",
                "value": None,
                "target": {"op": ">=", "value": 0.95},
                "ok": None,
            },
            {
                "name": "latency_p99_seconds",
                "window": "recent",
                "value": None,
                "target": {"op": "<", "value": 60.0},
                "ok": None,
            },
            {
                "name": "timeouts_per_hour",
                "window": "1h",
                "value": None,
                "target": {"op": "<", "value": 5.0},
                "ok": None,
            },
            {
                "name": "merge_efficiency",
                "window": "1h",
                "value": None,
                "target": {"op": ">", "value": 0.90},
                "ok": None,
            },
            {
                "name": "agent_balance_ratio",
                "window": "5m",
                "value": None,
                "target": {"op": "<", "value": 2.0},
                "ok": None,
            },
        ],
    }


def _phase_a() -> None:
    """Events at t=1000: inside the last hour at t=1405, outside its last 5 minutes."""
    for seconds in range(1, 11):
        record_task("codegen", float(seconds))
    record_task("codegen", 30.0, success=False, reason="boom")
    record_timeout(agent="a1", stage="codegen")
    record_timeout(agent="a1", stage="codegen", reason="deadline")
    assert record_split(agent="a1", chunks=3, depth=1) is True
    assert record_split(agent="a1", chunks=2, depth=4) is False  # beyond the default max depth 3
    record_merge(chunks_combined=10, duplicates_removed=1)
    for _ in range(3):
        record_chunk("a1", 2.0)
    record_chunk("a2", 1.0)
    record_docker_allocation("c1", 500, 2**29)
    record_docker_allocation("c1", 1000, 2**29, adjustment="cpu_up")


def _phase_b() -> None:
    """Events at t=1400: inside both windows at t=1405."""
    for seconds in range(11, 20):
        record_task("codegen", float(seconds))
    record_task("review", 61.0, agent="a3")
    record_timeout(agent="a2", stage="review")
    record_merge(chunks_combined=10, duplicates_removed=0)
    for agent, count in (("a1", 4), ("a2", 2), ("a3", 1)):
        for _ in range(count):
            record_chunk(agent, 0.5)


@pytest.fixture
def running(configured: Runtime) -> Iterator[None]:
    """A chunk on agent a4 started and not finished until the test ends."""

    @chunk(agent="a4")
    def work() -> Iterator[int]:
        yield 1

    generator = work()
    next(generator)
    yield
    generator.close()


@pytest.mark.usefixtures("running")
def test_known_sequence(clock: FakeClock) -> None:
    _phase_a()
    clock.now = 1400.0
    _phase_b()
    clock.now = 1405.0

    result = eddie_otel.summary()

    assert result["totals"] == {
        "task_split": 1,
        "task_split_chunks": 3,
        "timeout_events": 3,
        "fallback_depth_exceeded": 1,
        "task_success": 20,
        "task_failure": 1,
        "agent_tasks_executed": 12,
        "docker_elastic_adjustment": 1,
        "docker_container_cpu_usage_seconds": 0,
        "docker_container_cpu_throttled_seconds": 0,
        "docker_container_oom_kills": 0,
        "merge_deduplication": 1,
        "merge_chunks_combined": 20,
        "chunk_failure": 0,
        "task_fallback": 0,
        "fallback_chunk_seconds": 0,
        "fallback_cost_usd": 0,
        "agent_tokens": 0,
        "agent_cost_usd": 0,
    }
    assert {name: (load["active"], load["executed"]) for name, load in result["agents"].items()} == {
        "a1": (0, 7),
        "a2": (0, 3),
        "a3": (0, 2),
        "a4": (1, 0),
    }
    # No agent said its capacity; each was seen (Unix seconds, to within the 10-second clock).
    for load in result["agents"].values():
        assert load["capacity"] is None
        assert load["saturation"] is None
        assert abs((load["last_seen"] or 0) - time.time()) < 60
    # codegen: 1..19 and 30 (the failure); nearest rank of 20 values: p50 → 10th, p95 → 19th, p99 → 20th.
    assert result["latency"] == {
        "codegen": {"samples": 20, "p50": 10.0, "p95": 19.0, "p99": 30.0},
        "review": {"samples": 1, "p50": 61.0, "p95": 61.0, "p99": 61.0},
    }
    last_5m = {
        "task_split": 0,
        "task_split_chunks": 0,
        "timeout_events": 1,
        "fallback_depth_exceeded": 0,
        "task_success": 10,
        "task_failure": 0,
        "agent_tasks_executed": 8,
        "docker_elastic_adjustment": 0,
        "docker_container_cpu_usage_seconds": 0,
        "docker_container_cpu_throttled_seconds": 0,
        "docker_container_oom_kills": 0,
        "merge_deduplication": 0,
        "merge_chunks_combined": 10,
        "chunk_failure": 0,
        "task_fallback": 0,
        "fallback_chunk_seconds": 0,
        "fallback_cost_usd": 0,
        "agent_tokens": 0,
        "agent_cost_usd": 0,
    }
    # The history began at t=1000 and it is now t=1405: the 5-minute window is full, but the hour
    # has seen only 405 s, so its rates are per second of those 405 s. Dividing by 3600 (as an
    # earlier version did) reported a young process's rates about 9 times too low.
    assert result["windows"]["5m"] == {
        "seconds": 300,
        "covered_seconds": 300,
        "counts": last_5m,
        "rates": {key: value / 300 for key, value in last_5m.items()},
    }
    assert result["windows"]["1h"] == {
        "seconds": 3600,
        "covered_seconds": 405,
        "counts": result["totals"],
        "rates": {key: value / 405 for key, value in result["totals"].items()},
    }
    assert indicators(result) == {
        "success_rate": (20 / 21, True),
        "latency_p99_seconds": (61.0, False),
        "timeouts_per_hour": (3, True),
        "merge_efficiency": (1 - 1 / 20, True),
        # a1 4, a2 2, a3 2 (a chunk and a task) in the last 5 minutes: 4 / 2 is not below 2.
        "agent_balance_ratio": (2.0, False),
    }


def test_windows_forget_what_is_older(clock: FakeClock) -> None:
    _phase_a()
    clock.now = 1400.0
    _phase_b()
    # 1 h 20 s after phase A: only phase B is in the last hour, nothing in the last 5 minutes.
    clock.now = 1000.0 + 3600 + 20

    result = eddie_otel.summary()

    assert result["windows"]["1h"]["counts"]["task_success"] == 10
    assert result["windows"]["1h"]["counts"]["task_failure"] == 0
    assert result["windows"]["1h"]["counts"]["merge_chunks_combined"] == 10
    assert result["windows"]["5m"]["counts"] == dict.fromkeys(COUNTER_KEYS, 0)
    # Older than both windows now: each covers its full length.
    assert result["windows"]["1h"]["covered_seconds"] == 3600
    assert result["windows"]["1h"]["rates"]["task_success"] == 10 / 3600
    assert result["windows"]["5m"]["covered_seconds"] == 300
    assert result["totals"]["task_success"] == 20
    assert indicators(result) == {
        "success_rate": (1.0, True),
        "latency_p99_seconds": (61.0, False),
        "timeouts_per_hour": (1, True),
        "merge_efficiency": (1.0, True),
        "agent_balance_ratio": (None, None),
    }


def test_timeouts_need_activity_and_balance_needs_two_agents(clock: FakeClock) -> None:
    record_merge(chunks_combined=4, duplicates_removed=2)
    record_chunk("solo", 1.0)
    record_chunk("solo", 1.0)

    first = indicators(eddie_otel.summary())
    assert first["merge_efficiency"] == (0.5, False)
    assert first["timeouts_per_hour"] == (0, True)
    assert first["agent_balance_ratio"] == (None, None)
    assert first["success_rate"] == (None, None)

    eddie_otel.reset()
    runtime = eddie_otel.configure(serve=False)
    drive_history(runtime, clock)
    record_merge(chunks_combined=4, duplicates_removed=0)
    assert indicators(eddie_otel.summary())["timeouts_per_hour"] == (None, None)

    for _ in range(5):
        record_timeout(agent="a1", stage="s")
    assert indicators(eddie_otel.summary())["timeouts_per_hour"] == (5, False)


def test_a_young_service_reports_rates_over_the_time_it_has_been_up(clock: FakeClock) -> None:
    # Up 6 s with 21 timeouts: 3.5 per second, not 21 / 300 = 0.07.
    clock.now = 1006.0
    for _ in range(21):
        record_timeout(agent="a1", stage="s")

    windows = eddie_otel.summary()["windows"]

    for name, seconds in (("5m", 300), ("1h", 3600)):
        assert windows[name]["seconds"] == seconds
        assert windows[name]["covered_seconds"] == 6
        assert windows[name]["counts"]["timeout_events"] == 21
        assert windows[name]["rates"]["timeout_events"] == 3.5


def test_rates_divide_by_at_least_a_second(clock: FakeClock) -> None:
    # A burst in the first 10 ms is 4 events in the first second, not 400 per second.
    clock.now = 1000.01
    for _ in range(4):
        record_timeout(agent="a1", stage="s")

    window = eddie_otel.summary()["windows"]["5m"]

    assert window["covered_seconds"] == 0.01
    assert window["rates"]["timeout_events"] == 4.0


def test_each_indicator_names_its_window(clock: FakeClock) -> None:
    named = {item["name"]: item["window"] for item in eddie_otel.summary()["indicators"]}
    assert named == {
        "success_rate": "1h",
        "latency_p99_seconds": "recent",
        "timeouts_per_hour": "1h",
        "merge_efficiency": "1h",
        "agent_balance_ratio": "5m",
    }


def test_summary_of_an_explicit_runtime(clock: FakeClock, configured: Runtime) -> None:
    record_task("s", 1.0)
    assert eddie_otel.summary(configured)["totals"]["task_success"] == 1


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([7.0], 50, 7.0),
        ([7.0], 99, 7.0),
        ([3.0, 1.0, 2.0, 4.0], 50, 2.0),
        ([3.0, 1.0, 2.0, 4.0], 75, 3.0),
        ([3.0, 1.0, 2.0, 4.0], 76, 4.0),
        ([float(v) for v in range(1, 101)], 95, 95.0),
        ([float(v) for v in range(1, 101)], 100, 100.0),
        ([float(v) for v in range(1, 1025)], 99, 1014.0),
    ],
)
def test_nearest_rank_percentile(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


@pytest.mark.parametrize(
    ("values", "p", "message"),
    [([], 50, "no values"), ([1.0], 0, "p must be"), ([1.0], 101, "p must be")],
)
def test_percentile_rejects(values: list[float], p: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        percentile(values, p)
