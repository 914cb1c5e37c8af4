"""The fleet summary has the process summary's keys, all required, and fills them from Prometheus' answers.

`fleet_summary` runs here over a stand-in for the Prometheus API that answers each of the
summary's queries (`fleet._queries`) with a vector given by the test: the edge cases (no value,
NaN, an agent with a capacity only, too few tasks) without a Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

import eddie_otel
from eddie_otel.ops import fleet, promql, recommend
from eddie_otel.ops.prometheus_api import Vector
from eddie_otel.runtime import Runtime
from eddie_otel.summary import AgentLoad, Fallback, StageTimeout, Summary
from eddie_otel.timeouts import NOT_ENOUGH_DATA, OK, TOO_LOOSE, TOO_TIGHT
from tests.support.helpers import NOTHING_SPLIT

_WHERE = {"job": "eddie"}


def test_the_fleet_summary_has_the_process_summary_keys_plus_instances_and_source() -> None:
    assert fleet.FleetSummary.__required_keys__ == Summary.__required_keys__ | {"instances", "source"}
    for schema in (Summary, fleet.FleetSummary, AgentLoad, Fallback, StageTimeout):
        assert schema.__optional_keys__ == frozenset(), schema.__name__
    assert {"fallback", "timeouts"} <= Summary.__required_keys__
    assert {"capacity", "saturation", "last_seen"} <= AgentLoad.__required_keys__


def test_the_process_summary_fills_every_required_key(configured: Runtime) -> None:
    eddie_otel.set_agent_capacity(agent="a", slots=2)
    eddie_otel.set_timeout(stage="deploy", seconds=30)
    result = eddie_otel.summary()
    assert set(result) == Summary.__required_keys__
    assert set(result["agents"]["a"]) == AgentLoad.__required_keys__
    assert set(result["fallback"]) == Fallback.__required_keys__
    assert set(result["timeouts"]["deploy"]) == StageTimeout.__required_keys__


class _Prometheus:
    """Answers the summary's queries: `answers` by the key of `fleet._queries`, an empty vector otherwise."""

    def __init__(self, answers: Mapping[str, Vector]) -> None:
        queries = fleet._queries(_WHERE)
        self.by_expr = {queries[key]: vector for key, vector in answers.items()}
        self.url = "http://prometheus.test"

    def query(self, expr: str) -> Vector:
        if expr == fleet._targets_query(_WHERE):
            return [({"job": "eddie", "instance": "127.0.0.1:1"}, 1.0)]
        return self.by_expr.get(expr, [])


def _summary(monkeypatch: pytest.MonkeyPatch, answers: Mapping[str, Vector]) -> fleet.FleetSummary:
    prometheus = _Prometheus(answers)
    monkeypatch.setattr(fleet, "PrometheusAPI", lambda url: prometheus)
    return fleet.fleet_summary("http://prometheus.test", "eddie")


def test_nothing_recorded_gives_empty_agents_and_timeouts_and_a_fallback_of_zeros(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _summary(monkeypatch, {})
    assert set(result) == fleet.FleetSummary.__required_keys__
    assert (result["agents"], result["timeouts"]) == ({}, {})
    assert result["fallback"] == NOTHING_SPLIT


def test_fallback_counts_outcomes_and_takes_chunk_time_and_cost_from_the_totals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _summary(
        monkeypatch,
        {
            "fallback:outcomes": [({"outcome": "rescued"}, 3.0), ({"outcome": "failed"}, 1.0)],
            f"total:{promql.FALLBACK_CHUNK_SECONDS.key}": [({}, 12.5)],
            f"total:{promql.FALLBACK_COST.key}": [({}, 0.75)],
        },
    )
    assert result["fallback"] == {
        "split_tasks": 4,
        "rescued": 3,
        "failed": 1,
        "rescue_ratio": 0.75,
        "chunk_seconds": 12.5,
        "cost_usd": 0.75,
    }


def test_agents_take_capacity_saturation_and_last_seen_from_their_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _summary(
        monkeypatch,
        {
            "agents:active": [({"agent": "a"}, 2.0), ({"agent": "b"}, 1.0)],
            "agents:executed": [({"agent": "a"}, 7.0)],
            "agents:capacity": [({"agent": "a"}, 8.0), ({"agent": "idle"}, 3.0)],
            "agents:saturation": [({"agent": "a"}, 0.25), ({"agent": "idle"}, 0.0)],
            "agents:last_seen": [({"agent": "a"}, 1_700_000_000.1234), ({"agent": "b"}, 1_700_000_010.0)],
        },
    )
    assert result["agents"] == {
        "a": {"active": 2, "executed": 7, "capacity": 8, "saturation": 0.25, "last_seen": 1_700_000_000.123},
        "b": {"active": 1, "executed": 0, "capacity": None, "saturation": None, "last_seen": 1_700_000_010},
        "idle": {"active": 0, "executed": 0, "capacity": 3, "saturation": 0.0, "last_seen": None},
    }


def test_each_stage_is_judged_with_the_words_of_the_process_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    enough = float(recommend.MIN_TASKS)
    result = _summary(
        monkeypatch,
        {
            "timeouts:in_use": [({"stage": "tight"}, 10.0), ({"stage": "loose"}, 60.0), ({"stage": "set"}, 5.0)],
            # NaN: the rule's quantile over a day without a task.
            "timeouts:recommended": [({"stage": "tight"}, 12.0), ({"stage": "loose"}, math.nan)],
            "timeouts:hit_share": [({"stage": "tight"}, 0.1), ({"stage": "loose"}, 0.0), ({"stage": "few"}, 0.5)],
            "latency:samples": [
                ({"stage": "tight"}, enough),
                ({"stage": "loose"}, enough + 1),
                ({"stage": "few"}, enough - 1),
                ({"stage": "ok"}, enough),
            ],
            "latency:p99": [
                ({"stage": "tight"}, 9.5),
                ({"stage": "loose"}, 1.0),
                ({"stage": "few"}, 2.0),
                ({"stage": "ok"}, 2.0),
            ],
        },
    )
    timeouts = result["timeouts"]
    assert list(timeouts) == ["few", "loose", "ok", "set", "tight"]
    assert timeouts["tight"] == {
        "timeout_seconds": 10,
        "recommended_seconds": 12.0,
        "samples": recommend.MIN_TASKS,
        "p99": 9.5,
        "hit_share": 0.1,
        "reason": TOO_TIGHT,
    }
    assert timeouts["loose"]["recommended_seconds"] is None
    assert timeouts["loose"]["reason"] == TOO_LOOSE
    assert timeouts["few"]["reason"] == NOT_ENOUGH_DATA
    assert timeouts["few"]["recommended_seconds"] is None
    # No hit share (no timeout series and no finished task counted) with a p99: nothing against it.
    assert (timeouts["ok"]["hit_share"], timeouts["ok"]["reason"]) == (None, OK)
    # A timeout set and no task in the hour: nothing to judge.
    assert timeouts["set"] == {
        "timeout_seconds": 5,
        "recommended_seconds": None,
        "samples": 0,
        "p99": None,
        "hit_share": None,
        "reason": NOT_ENOUGH_DATA,
    }
    for entry in timeouts.values():
        assert isinstance(entry["samples"], int)


def test_a_stage_with_only_a_fleet_recommendation_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _summary(monkeypatch, {"timeouts:recommended": [({"stage": "yesterday"}, 4.5)]})
    # Listed, but with no task in the hour there is not enough data: no number beside those words.
    assert result["timeouts"] == {
        "yesterday": {
            "timeout_seconds": None,
            "recommended_seconds": None,
            "samples": 0,
            "p99": None,
            "hit_share": None,
            "reason": NOT_ENOUGH_DATA,
        }
    }
