"""PromQL builders: aggregate first, refuse the wrong metric kind or label with a message naming it."""

from __future__ import annotations

import pytest

from eddie_otel.ops import promql


def test_sum_rate_and_increase_aggregate_over_everything_or_by_labels() -> None:
    assert promql.sum_rate(promql.TASK_SPLIT, "5m") == "sum(rate(task_split_total[5m]))"
    assert (
        promql.sum_increase(promql.TIMEOUT_EVENTS, "1h", ("agent", "stage"))
        == "sum by (agent, stage) (increase(timeout_events_total[1h]))"
    )


def test_quantile_sums_bucket_rates_by_le_first() -> None:
    assert (
        promql.quantile(0.99, promql.TASK_EXECUTION, "$__rate_interval", ("stage",))
        == "histogram_quantile(0.99, sum by (le, stage) (rate(task_execution_seconds_bucket[$__rate_interval])))"
    )


def test_ratio_drops_a_zero_denominator() -> None:
    assert promql.ratio("a", "b") == "a / (b > 0)"
    assert promql.merge_efficiency("5m") == (
        "1 - sum(rate(merge_deduplication_total[5m])) / (sum(rate(merge_chunks_combined_total[5m])) > 0)"
    )


def test_rate_of_a_histogram_or_gauge_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^rate\(\) needs a counter, and task_execution_seconds is a histogram$"):
        promql.sum_rate(promql.TASK_EXECUTION, "5m")
    with pytest.raises(ValueError, match=r"^increase\(\) needs a counter, and agent_active_tasks is a gauge$"):
        promql.sum_increase(promql.AGENT_ACTIVE_TASKS, "5m")


def test_quantile_and_mean_of_a_counter_are_refused() -> None:
    with pytest.raises(ValueError, match=r"needs a histogram, and task_split_total is a counter$"):
        promql.quantile(0.5, promql.TASK_SPLIT, "5m")
    with pytest.raises(ValueError, match=r"needs a histogram, and task_split_total is a counter$"):
        promql.mean(promql.TASK_SPLIT, "5m")


def test_unknown_label_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match=r"^task_success_total has no label 'agent' \(labels: \['stage'\]\)$"):
        promql.sum_rate(promql.TASK_SUCCESS, "5m", ("agent",))


def test_selector_writes_only_the_matchers_a_metric_has_labels_for() -> None:
    where = {"job": "$job", "instance": "$instance", "agent": "$agent", "stage": "$stage"}
    assert promql.selector(promql.TASK_SPLIT) == "task_split_total"
    assert (
        promql.selector(promql.TASK_SPLIT, where)
        == 'task_split_total{job=~"$job", instance=~"$instance", agent=~"$agent"}'
    )
    assert promql.selector(promql.MERGE_DEDUPLICATION, where) == (
        'merge_deduplication_total{job=~"$job", instance=~"$instance"}'
    )
    assert promql.selector(promql.TASK_EXECUTION, {"stage": "a"}, "_bucket", ('le="60"',)) == (
        'task_execution_seconds_bucket{stage=~"a", le="60"}'
    )
    # Quotes and backslashes stay inside the string literal.
    assert promql.selector(promql.TASK_SPLIT, {"job": 'a"b\\.c'}) == 'task_split_total{job=~"a\\"b\\\\.c"}'


def test_builders_carry_the_matchers_to_every_series_they_read() -> None:
    where = {"job": "eddie"}
    assert promql.sum_rate(promql.TASK_SPLIT, "5m", where=where) == 'sum(rate(task_split_total{job=~"eddie"}[5m]))'
    assert (
        promql.success_ratio("1h", where=where).count("rate(")
        == promql.success_ratio("1h", where=where).count('{job=~"eddie"}')
        == 6
    )
    assert promql.mean(promql.TASK_EXECUTION, "5m", where=where).count('{job=~"eddie"}') == 2


def test_indicators_are_the_five_of_the_summary_over_one_window() -> None:
    queries = promql.indicators("1h", where={"job": "eddie"})
    assert list(queries) == [
        "success_rate",
        "latency_p99_seconds",
        "timeouts_per_hour",
        "merge_efficiency",
        "agent_balance_ratio",
    ]
    counted = promql.increase_from_zero('task_execution_seconds_bucket{job=~"eddie"}', "1h")
    assert queries["latency_p99_seconds"] == f"histogram_quantile(0.99, sum by (le) ({counted}))"
    timeouts = promql.increase_from_zero('timeout_events_total{job=~"eddie"}', "1h")
    assert queries["timeouts_per_hour"].startswith(f"(sum({timeouts}) or vector(0)) * 3600 / 3600 ")
    for expr in queries.values():
        assert "[1h]" in expr
        # Counted, not rated: a series new in the window counts from zero.
        assert "rate(" not in expr


def test_increase_from_zero_counts_a_series_absent_at_the_start_from_zero() -> None:
    assert promql.increase_from_zero("x", "1h") == (
        "(((last_over_time(x[1h]) - (last_over_time(x[5m] offset 1h) or last_over_time(x[1h]) * 0)) >= 0"
        " or last_over_time(x[1h])) unless resets(x[1h]) > 0 or increase(x[1h]))"
    )
    successes = promql.increase_from_zero('task_success_total{job=~"j"}', "5m")
    assert promql.sum_counted(promql.TASK_SUCCESS, "5m", ("stage",), where={"job": "j"}) == (
        f"sum by (stage) ({successes})"
    )
    assert promql.sum_counted(promql.TASK_EXECUTION, "5m", suffix="_count").startswith(
        "sum((((last_over_time(task_execution_seconds_count[5m])"
    )


def test_counting_a_gauge_or_a_bare_histogram_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^counting needs a counter or a histogram's series, not agent_active_tasks$"):
        promql.sum_counted(promql.AGENT_ACTIVE_TASKS, "5m")
    with pytest.raises(ValueError, match=r"not task_execution_seconds$"):
        promql.sum_counted(promql.TASK_EXECUTION, "5m")
    with pytest.raises(ValueError, match=r"needs a histogram, and task_split_total is a counter$"):
        promql.counted_quantile(0.5, promql.TASK_SPLIT, "5m")


def test_timeouts_per_hour_divides_by_the_window_in_seconds() -> None:
    assert " * 3600 / 300 and on () (" in promql.timeouts_per_hour("5m")
    assert " * 3600 / $__range_s and on () (" in promql.timeouts_per_hour("$__range")
    assert promql.duration_seconds("1h30m") == 5400
    assert promql.duration_seconds("250ms") == 0.25
    for wrong in ("", "1x", "h", "5m "):
        with pytest.raises(ValueError, match="not a PromQL duration"):
            promql.duration_seconds(wrong)
