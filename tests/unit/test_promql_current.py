"""PromQL builders of current values (totals, levels), of a recording rule's series, and of the timeout hit share."""

from __future__ import annotations

import re

import pytest

from eddie_otel.ops import fleet, promql, recommend

_UP = "and on (job, instance) (up == 1)"


def test_current_aggregates_a_counter_or_gauge_and_on_live_targets_only_when_asked() -> None:
    assert promql.current("sum", promql.TASK_SPLIT) == "sum(task_split_total)"
    assert (
        promql.current("max", promql.TASK_TIMEOUT, ("stage",), where={"job": "eddie"})
        == 'max by (stage) (task_timeout_seconds{job=~"eddie"})'
    )
    assert promql.current("sum", promql.AGENT_CAPACITY, ("agent",), up_only=True) == (
        f"sum by (agent) ((agent_capacity {_UP}))"
    )
    assert promql.live("x") == f"(x {_UP})"


def test_current_refuses_a_histogram_and_an_unknown_label() -> None:
    with pytest.raises(ValueError, match=r"^a current value needs a counter or a gauge, and task_execution_seconds"):
        promql.current("sum", promql.TASK_EXECUTION)
    with pytest.raises(ValueError, match=r"^agent_capacity has no label 'stage'"):
        promql.current("sum", promql.AGENT_CAPACITY, ("stage",))


def test_saturation_and_last_seen_are_the_dashboard_queries_unless_narrowed_to_live_targets() -> None:
    assert promql.saturation() == "sum by (agent) (agent_active_tasks) / (sum by (agent) (agent_capacity) > 0)"
    assert promql.seconds_since_seen() == "time() - max by (agent) (agent_last_seen_timestamp_seconds)"
    assert promql.last_seen() == "max by (agent) (agent_last_seen_timestamp_seconds)"
    # An agent with a capacity and no running-task series is 0, not missing.
    active, capacity = f"sum by (agent) ((agent_active_tasks {_UP}))", f"sum by (agent) ((agent_capacity {_UP}))"
    assert promql.saturation(up_only=True, idle_as_zero=True) == f"({active} or {capacity} * 0) / ({capacity} > 0)"


def test_recorded_narrows_a_rule_series_by_its_own_labels_only() -> None:
    where = {"job": "eddie", "instance": "x", "stage": "s"}
    assert (
        promql.recorded("max", recommend.RECORD, recommend.BY, ("stage",), where=where)
        == 'max by (stage) (eddie:task_timeout_recommended_seconds{job=~"eddie", stage=~"s"})'
    )
    assert promql.recorded("max", "r", ("job",)) == "max(r)"
    with pytest.raises(ValueError, match=r"^r has no label 'agent' \(labels: \['job'\]\)$"):
        promql.recorded("max", "r", ("job",), ("agent",))


def test_hit_share_counts_over_the_window_and_refuses_a_label_tasks_do_not_have() -> None:
    where = {"job": "eddie"}
    expr = promql.hit_share("1h", where=where)
    for metric in (promql.TIMEOUT_EVENTS, promql.TASK_SUCCESS, promql.TASK_FAILURE):
        assert promql.sum_counted(metric, "1h", ("stage",), where=where) in expr
    names = re.findall(r"(?:timeout_events|task_success|task_failure)_total(.)", expr)
    assert names
    assert set(names) == {"{"}
    assert "rate(" not in expr
    with pytest.raises(ValueError, match=r"^task_success_total has no label 'agent'"):
        promql.hit_share("1h", ("agent",))


def test_the_fleet_summary_asks_only_builder_queries_narrowed_to_its_job() -> None:
    queries = fleet._queries({"job": "eddie"})
    assert queries["agents:saturation"] == promql.saturation(
        ("agent",), where={"job": "eddie"}, up_only=True, idle_as_zero=True
    )
    assert queries["timeouts:hit_share"] == promql.hit_share(fleet.INDICATOR_WINDOW, where={"job": "eddie"})
    # The p99 of the timeouts is the latency's: one query.
    assert queries["latency:p99"] == promql.counted_quantile(
        0.99, promql.TASK_EXECUTION, fleet.INDICATOR_WINDOW, ("stage",), where={"job": "eddie"}
    )
    for key, expr in queries.items():
        if key != "instances:ids":
            assert 'job=~"eddie"' in expr, key


def test_a_where_value_is_a_regular_expression_unless_exact_and_is_quoted_as_a_promql_string() -> None:
    job = 'agents.eu "blue"\\'
    assert promql.selector(promql.TASK_TIMEOUT, {"job": job}) == 'task_timeout_seconds{job=~"agents.eu \\"blue\\"\\\\"}'
    assert (
        promql.selector(promql.TASK_TIMEOUT, {"job": promql.Exact(job)})
        == 'task_timeout_seconds{job="agents.eu \\"blue\\"\\\\"}'
    )
    # A control character is escaped (a raw newline would end the query's string).
    assert promql.selector(promql.TASK_TIMEOUT, {"job": promql.Exact("a\nb")}) == 'task_timeout_seconds{job="a\\nb"}'


def test_recommend_asks_for_its_job_exactly_with_the_fleet_summarys_builders() -> None:
    where = {"job": promql.Exact("eddie.agents")}
    assert recommend.quantile(0.99, "1d", "eddie.agents") == promql.quantile(
        0.99, promql.TASK_EXECUTION, "1d", recommend.BY, where=where
    )
    assert 'job="eddie.agents"' in recommend.tasks_counted("7d", "eddie.agents")
    assert 'job=~"' not in recommend.timeout_in_use("eddie.agents")
