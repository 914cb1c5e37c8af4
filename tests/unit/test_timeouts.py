"""Timeouts: the one in use, and the recommendation computed from known successful durations, exactly."""

from __future__ import annotations

import contextlib

import pytest

import eddie_otel
from eddie_otel.config import Settings
from eddie_otel.errors import ConfigurationError
from eddie_otel.runtime import Runtime
from eddie_otel.timeouts import Policy, nearest_rank_p99, recommend, verdict
from tests.support.helpers import sample_value


def exposition(runtime: Runtime) -> str:
    body, _headers = runtime.telemetry.exposition()
    return body.decode()


# -------------------------------------------------------------- the computation, on known samples


def test_p99_is_nearest_rank_not_interpolated() -> None:
    # 1..1000: the ⌈0.99·1000⌉ = 990th smallest is 990 (interpolation would give 990.01).
    assert nearest_rank_p99([float(v) for v in range(1, 1001)]) == 990.0
    # 1..100: the 99th smallest; 1..50: ⌈49.5⌉ = 50th, the largest.
    assert nearest_rank_p99([float(v) for v in range(1, 101)]) == 99.0
    assert nearest_rank_p99([float(v) for v in range(1, 51)]) == 50.0


def test_recommendation_is_margin_times_p99() -> None:
    durations = [float(v) for v in range(1, 1001)]
    assert recommend(durations) == 990.0 * 1.5
    assert recommend(durations, Policy(margin=2.0)) == 1980.0


def test_recommendation_is_never_below_the_slowest_duration() -> None:
    # p99 of 99 x 2 s and one 100 s is 2 s: 3 s with the margin, but a task took 100 s.
    assert recommend([2.0] * 99 + [100.0]) == 100.0


def test_recommendation_is_clamped() -> None:
    assert recommend([0.01] * 60) == 1.0
    assert recommend([0.01] * 60, Policy(min_seconds=0.5)) == 0.5
    assert recommend([80_000.0] * 60) == 86_400.0
    assert recommend([10.0] * 60, Policy(max_seconds=12.0)) == 12.0


def test_no_recommendation_below_the_minimum_samples() -> None:
    assert recommend([5.0] * 49) is None
    assert recommend([5.0] * 50) == 7.5
    assert recommend([5.0] * 9, Policy(min_samples=10)) is None
    assert recommend([5.0] * 10, Policy(min_samples=10)) == 7.5


@pytest.mark.parametrize(
    ("timeout", "p99", "share", "enough", "expected"),
    [
        (10.0, 9.0, 0.051, True, "too tight"),
        (10.0, 9.0, 0.05, True, "ok"),
        (30.0, 9.99, 0.0, True, "too loose"),
        (30.0, 10.0, 0.0, True, "ok"),
        (None, 10.0, 0.0, True, "ok"),
        (10.0, 9.0, 0.5, False, "not enough data"),
        (10.0, None, None, True, "not enough data"),
    ],
)
def test_verdict(timeout: float | None, p99: float | None, share: float | None, enough: bool, expected: str) -> None:
    assert verdict(timeout, p99, share, enough) == expected


# -------------------------------------------------------------- in a runtime


def test_successes_only_count_and_the_gauge_appears_with_the_recommendation(configured: Runtime) -> None:
    @eddie_otel.task(stage="codegen")
    def fail() -> None:
        raise TimeoutError

    for _ in range(100):
        with contextlib.suppress(TimeoutError):
            fail()
    for value in range(1, 50):
        eddie_otel.record_task("codegen", float(value))
    eddie_otel.record_task("codegen", 500.0, success=False, reason="error")
    assert eddie_otel.recommended_timeout("codegen") is None
    assert eddie_otel.recommended_timeout("codegen", default=30.0) == 30.0
    assert "task_timeout_recommended_seconds" not in exposition(configured)

    eddie_otel.record_task("codegen", 50.0)
    # 1..50 s: the p99 is the 50th smallest, 50 s; times 1.5.
    assert eddie_otel.recommended_timeout("codegen") == 75.0
    assert sample_value(exposition(configured), "task_timeout_recommended_seconds", stage="codegen") == 75.0
    assert eddie_otel.recommended_timeout("review", default=5.0) == 5.0


def test_the_ring_keeps_the_last_thousand_successes(configured: Runtime) -> None:
    for _ in range(100):
        eddie_otel.record_task("codegen", 7_000.0)
    for value in range(1, 1001):
        eddie_otel.record_task("codegen", float(value))
    # The 100 slow ones have left the ring: 1..1000 remain, p99 990 s.
    assert eddie_otel.recommended_timeout("codegen") == 1485.0


def test_a_decorated_call_feeds_the_recommendation(configured: Runtime) -> None:
    @eddie_otel.task(stage="fast")
    def work() -> int:
        return 1

    for _ in range(50):
        work()
    # Microseconds each: clamped up to the minimum of 1 s.
    assert eddie_otel.recommended_timeout("fast") == 1.0


def test_set_timeout_records_the_gauge(configured: Runtime) -> None:
    eddie_otel.set_timeout(stage="codegen", seconds=30)
    eddie_otel.set_timeout(stage="codegen", seconds=45.5)
    assert sample_value(exposition(configured), "task_timeout_seconds", stage="codegen") == 45.5


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True, "30"])
def test_set_timeout_refuses_bad_seconds(configured: Runtime, seconds: object) -> None:
    with pytest.raises(ValueError, match="seconds"):
        eddie_otel.set_timeout(stage="codegen", seconds=seconds)  # type: ignore[arg-type]
    assert "task_timeout_seconds" not in exposition(configured)


def test_settings_from_the_environment_change_the_recommendation() -> None:
    eddie_otel.configure(
        serve=False,
        environ={
            "EDDIE_OTEL_TIMEOUT_MIN_SAMPLES": "10",
            "EDDIE_OTEL_TIMEOUT_MARGIN": "2",
            "EDDIE_OTEL_TIMEOUT_MIN_SECONDS": "0.5",
            "EDDIE_OTEL_TIMEOUT_MAX_SECONDS": "15",
        },
    )
    for _ in range(9):
        eddie_otel.record_task("codegen", 0.1)
    assert eddie_otel.recommended_timeout("codegen") is None
    eddie_otel.record_task("codegen", 0.1)
    assert eddie_otel.recommended_timeout("codegen") == 0.5
    for _ in range(10):
        eddie_otel.record_task("codegen", 10.0)
    assert eddie_otel.recommended_timeout("codegen") == 15.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EDDIE_OTEL_TIMEOUT_MIN_SAMPLES", "0"),
        ("EDDIE_OTEL_TIMEOUT_MIN_SAMPLES", "1001"),
        ("EDDIE_OTEL_TIMEOUT_MIN_SAMPLES", "many"),
        ("EDDIE_OTEL_TIMEOUT_MARGIN", "0.9"),
        ("EDDIE_OTEL_TIMEOUT_MARGIN", "nan"),
        ("EDDIE_OTEL_TIMEOUT_MARGIN", "x"),
        ("EDDIE_OTEL_TIMEOUT_MIN_SECONDS", "0"),
        ("EDDIE_OTEL_TIMEOUT_MIN_SECONDS", "100000"),
        ("EDDIE_OTEL_TIMEOUT_MAX_SECONDS", "inf"),
        ("EDDIE_OTEL_TIMEOUT_MAX_SECONDS", "0.5"),
    ],
)
def test_invalid_variables_are_errors_naming_them(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.load({variable: value})


def test_summary_reports_each_stage_timeout() -> None:
    configured = eddie_otel.configure(serve=False)
    eddie_otel.set_timeout(stage="tight", seconds=10)
    eddie_otel.set_timeout(stage="loose", seconds=600)
    eddie_otel.set_timeout(stage="idle", seconds=5)
    for _ in range(90):
        eddie_otel.record_task("tight", 9.0)
    for _ in range(10):
        eddie_otel.record_task("tight", 10.0, success=False, reason="timeout")
    for _ in range(60):
        eddie_otel.record_task("loose", 20.0)
    for _ in range(3):
        eddie_otel.record_task("thin", 1.0)
    timeouts = eddie_otel.summary(configured)["timeouts"]
    assert timeouts == {
        "idle": {
            "timeout_seconds": 5,
            "recommended_seconds": None,
            "samples": 0,
            "p99": None,
            "hit_share": None,
            "reason": "not enough data",
        },
        "loose": {
            "timeout_seconds": 600,
            "recommended_seconds": 30.0,
            "samples": 60,
            "p99": 20.0,
            "hit_share": 0.0,
            "reason": "too loose",
        },
        "thin": {
            "timeout_seconds": None,
            "recommended_seconds": None,
            "samples": 3,
            "p99": 1.0,
            "hit_share": 0.0,
            "reason": "not enough data",
        },
        "tight": {
            "timeout_seconds": 10,
            "recommended_seconds": 13.5,
            "samples": 90,
            "p99": 9.0,
            "hit_share": 0.1,
            "reason": "too tight",
        },
    }
