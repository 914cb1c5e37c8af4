"""The dashboard queries give the right numbers in Prometheus' own engine (through `promtool test rules`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eddie_otel.ops.assets import DASHBOARD
from eddie_otel.ops.dashboard import (
    expand_variables,
    panel_queries,
)
from tests.support.prometheus_server import promtool_expressions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The committed dashboard JSON, parsed."""
    loaded: dict[str, Any] = json.loads((ROOT / DASHBOARD).read_text(encoding="utf-8"))
    return loaded


# Series for the evaluation below: one sample a minute for an hour. Counters grow by
# 60·r a minute, i.e. a rate of exactly r per second over any window, so the
# expected values are exact. Several series carry an `instance` label to show the
# queries aggregate across instances.
_SERIES: dict[str, str] = {
    'task_split_total{agent="a", instance="i1"}': "0+60x60",
    'task_split_total{agent="b", instance="i1"}': "0+60x60",
    'task_split_total{agent="b", instance="i2"}': "0+60x60",
    'task_split_chunks_total{agent="a"}': "0+180x60",
    'task_split_chunks_total{agent="b"}': "0+240x60",
    'timeout_events_total{agent="a", stage="codegen", reason="deadline"}': "0+60x60",
    'timeout_events_total{agent="a", stage="codegen", reason="oom"}': "0+60x60",
    'timeout_events_total{agent="b", stage="review", reason="deadline"}': "0+180x60",
    'fallback_depth_exceeded_total{agent="a"}': "0+1x60",
    # codegen: 100 tasks/s, 50 within 30 s, 98 within 60 s, all within 120 s.
    'task_execution_seconds_bucket{stage="codegen", le="30"}': "0+3000x60",
    'task_execution_seconds_bucket{stage="codegen", le="60"}': "0+5880x60",
    'task_execution_seconds_bucket{stage="codegen", le="120"}': "0+6000x60",
    'task_execution_seconds_bucket{stage="codegen", le="+Inf"}': "0+6000x60",
    'task_execution_seconds_sum{stage="codegen"}': "0+150000x60",
    'task_execution_seconds_count{stage="codegen"}': "0+6000x60",
    # Agent a's chunks like codegen's tasks; agent b's all within 30 s.
    'chunk_execution_seconds_bucket{agent="a", le="30"}': "0+3000x60",
    'chunk_execution_seconds_bucket{agent="a", le="60"}': "0+5880x60",
    'chunk_execution_seconds_bucket{agent="a", le="120"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="a", le="+Inf"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="30"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="60"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="120"}': "0+6000x60",
    'chunk_execution_seconds_bucket{agent="b", le="+Inf"}': "0+6000x60",
    # codegen: 3 successes and 1 failure a second; review: only failures, no success series at all.
    'task_success_total{stage="codegen"}': "0+180x60",
    'task_failure_total{stage="codegen", reason="ValueError"}': "0+60x60",
    'task_failure_total{stage="review", reason="TimeoutError"}': "0+60x60",
    'agent_active_tasks{agent="a", instance="i1"}': "2x60",
    'agent_active_tasks{agent="a", instance="i2"}': "1x60",
    'agent_active_tasks{agent="b", instance="i1"}': "0x60",
    # a executes twice as much as b; idle executed 7 long ago and nothing since.
    'agent_tasks_executed_total{agent="a"}': "0+240x60",
    'agent_tasks_executed_total{agent="b"}': "0+120x60",
    'agent_tasks_executed_total{agent="idle"}': "7x60",
    # Two instances report the same limit of c1: a limit is not additive.
    'docker_container_cpu_limit{container="c1", instance="i1"}': "1500x60",
    'docker_container_cpu_limit{container="c1", instance="i2"}': "1500x60",
    'docker_container_cpu_limit{container="c2", instance="i1"}': "500x60",
    'docker_container_memory_limit_bytes{container="c1"}': "536870912x60",
    'docker_elastic_adjustment_total{container="c1", type="cpu_up"}': "0+1x60",
    'docker_elastic_adjustment_total{container="c1", type="memory_down"}': "0+2x60",
    # c1 uses half a core (30 CPU seconds a minute), is throttled a tenth of a second a second, holds 256 MiB
    # of its 512 MiB, and has a process OOM-killed every minute.
    'docker_container_cpu_usage_seconds_total{container="c1"}': "0+30x60",
    'docker_container_cpu_throttled_seconds_total{container="c1"}': "0+6x60",
    'docker_container_memory_usage_bytes{container="c1", instance="i1"}': "268435456x60",
    'docker_container_oom_kills_total{container="c1"}': "0+1x60",
    # 10 chunk results combined and 1 duplicate removed a second.
    "merge_chunks_combined_total": "0+600x60",
    "merge_deduplication_total": "0+60x60",
    # Agent a: one chunk in two seconds fails, timed out.
    'chunk_failure_total{agent="a", reason="timeout"}': "0+30x60",
    # codegen runs with a 120 s timeout on one instance and 90 s on another; their recommendations differ too.
    'task_timeout_seconds{stage="codegen", instance="i1"}': "120x60",
    'task_timeout_seconds{stage="codegen", instance="i2"}': "90x60",
    'task_timeout_recommended_seconds{stage="codegen", instance="i1"}': "135x60",
    'task_timeout_recommended_seconds{stage="codegen", instance="i2"}': "100x60",
    # Split tasks: codegen 3 rescued and 1 failed a second (over two instances), review only failures.
    'task_fallback_total{stage="codegen", outcome="rescued", instance="i1"}': "0+120x60",
    'task_fallback_total{stage="codegen", outcome="rescued", instance="i2"}': "0+60x60",
    'task_fallback_total{stage="codegen", outcome="failed"}': "0+60x60",
    'task_fallback_total{stage="review", outcome="failed"}': "0+30x60",
    # 120 chunk-seconds a second for codegen's splits (36 000 in 5 minutes: 10 h), 12 for review's (1 h).
    'fallback_chunk_seconds_total{stage="codegen"}': "0+7200x60",
    'fallback_chunk_seconds_total{stage="review"}': "0+720x60",
    # $0.75 a second of fallback cost for codegen, $0.10 for review (which rescues nothing).
    'fallback_cost_usd_total{stage="codegen"}': "0+45x60",
    'fallback_cost_usd_total{stage="review"}': "0+6x60",
    # Agent a's chunks all start within 0.5 s, b's within 30 s.
    'chunk_queue_wait_seconds_bucket{agent="a", le="0.5"}': "0+60x60",
    'chunk_queue_wait_seconds_bucket{agent="a", le="+Inf"}': "0+60x60",
    'chunk_queue_wait_seconds_bucket{agent="b", le="30"}': "0+60x60",
    'chunk_queue_wait_seconds_bucket{agent="b", le="+Inf"}': "0+60x60",
    # a can run 2 at once on each of two instances (3 running: 75 %), b 4 (none running); idle runs nothing at all.
    'agent_capacity{agent="a", instance="i1"}': "2x60",
    'agent_capacity{agent="a", instance="i2"}': "2x60",
    'agent_capacity{agent="b", instance="i1"}': "4x60",
    'agent_capacity{agent="idle", instance="i1"}': "1x60",
    # a is seen every minute (by i1; i2 saw it last at 50m), b last at 50m.
    'agent_last_seen_timestamp_seconds{agent="a", instance="i1"}': "0+60x60",
    'agent_last_seen_timestamp_seconds{agent="a", instance="i2"}': "0+60x50 3000x10",
    'agent_last_seen_timestamp_seconds{agent="b", instance="i1"}': "0+60x50 3000x10",
    # a uses 10 input and 2 output tokens of gpt-4o a second, costing $0.25 a second.
    'agent_tokens_total{agent="a", model="gpt-4o", type="input"}': "0+600x60",
    'agent_tokens_total{agent="a", model="gpt-4o", type="output"}': "0+120x60",
    'agent_cost_usd_total{agent="a", model="gpt-4o"}': "0+15x60",
}


# (panel title, {labels: value}) for every target in dashboard order, evaluated at the
# end of the hour with $__rate_interval = 5m and $__range = 1h. Not the anomaly bands' edges, which read
# recordings that exist after a week (_NEED_A_WEEK): tests/integration/test_anomaly_rules.py evaluates them
# over a week of the anomaly rules.
_EXPECTED: list[tuple[str, dict[str, float]]] = [
    ("Success rate", {"{}": 0.6}),  # 3 / (3 + 2)
    ("Latency p99", {"{}": 90}),  # rank 99 of 100 falls halfway into (60, 120]
    ("Timeouts per hour", {"{}": 18000}),  # 5 a second
    ("Merge efficiency", {"{}": 0.9}),  # 1 - 1/10
    ("Agent balance", {"{}": 2}),  # 4 / 2, the idle agent left out
    ("Task splits by agent", {'{agent="a"}': 1, '{agent="b"}': 2}),
    ("Task splits by agent", {"{}": 3}),  # all agents over 5 minutes, what the anomaly band is about
    ("Chunks created by agent", {'{agent="a"}': 3, '{agent="b"}': 4}),
    ("Chunks per split by agent", {'{agent="a"}': 3, '{agent="b"}': 2}),
    ("Timeout events by agent and stage", {'{agent="a", stage="codegen"}': 2, '{agent="b", stage="review"}': 3}),
    ("Timeout events by agent and stage", {"{}": 5}),
    ("Fallback depth violations by agent", {'{agent="a"}': 5}),
    ("Task execution time by stage", {'{stage="codegen"}': 58.125}),  # p95: 30 + 30 · 45/48
    ("Task execution time by stage", {'{stage="codegen"}': 90}),
    ("Task execution time by stage", {'{stage="codegen"}': 25}),  # mean: 2500 / 100
    ("Task execution time by stage", {"{}": 90}),  # the p99 of all stages
    ("Chunk execution time by agent", {'{agent="a"}': 58.125, '{agent="b"}': 28.5}),  # b: 30 · 0.95
    ("Chunk execution time by agent", {'{agent="a"}': 90, '{agent="b"}': 29.7}),  # b: 30 · 0.99
    ("Task successes and failures by stage", {'{stage="codegen"}': 3}),
    (
        "Task successes and failures by stage",
        {'{stage="codegen", reason="ValueError"}': 1, '{stage="review", reason="TimeoutError"}': 1},
    ),
    ("Success rate by stage", {'{stage="codegen"}': 0.75, '{stage="review"}': 0}),
    ("Success rate by stage", {"{}": 0.6}),  # 1 - 2 failures / 5 finished tasks, all stages
    ("Chunk failures by agent", {'{agent="a", reason="timeout"}': 0.5}),
    ("Active tasks by agent", {'{agent="a"}': 3, '{agent="b"}': 0}),
    ("Tasks and chunks executed by agent", {'{agent="a"}': 4, '{agent="b"}': 2, '{agent="idle"}': 0}),
    ("Agent balance", {"{}": 2}),
    ("Container CPU limit (cores)", {'{container="c1"}': 1.5, '{container="c2"}': 0.5}),
    ("Container memory limit", {'{container="c1"}': 536870912}),
    (
        "Elastic adjustments by container and type",
        {'{container="c1", type="cpu_up"}': 5, '{container="c1", type="memory_down"}': 10},
    ),
    ("Chunk results combined and duplicates removed", {"{}": 10}),
    ("Chunk results combined and duplicates removed", {"{}": 1}),
    ("Merge efficiency", {"{}": 0.9}),
    # 2 failures in 5 finished tasks against a 5 % budget: 8x in every window, 7 budgets overspent.
    ("Task success: error budget left (30d)", {"{}": -7}),
    *[("Task success: burn rate", {"{}": 8})] * 4,
    # 2 % of tasks over 60 s against a 1 % budget: 2x, one budget overspent.
    ("Task latency: error budget left (30d)", {"{}": -1}),
    *[("Task latency: burn rate", {"{}": 2})] * 4,
    ("Container CPU usage against limit (cores)", {'{container="c1"}': 0.5}),
    ("Container CPU usage against limit (cores)", {'{container="c1"}': 1.5, '{container="c2"}': 0.5}),
    ("Container memory usage against limit", {'{container="c1"}': 268435456}),
    ("Container memory usage against limit", {'{container="c1"}': 536870912}),
    ("Container CPU throttling", {'{container="c1"}': 0.1}),
    ("Container OOM kills", {'{container="c1"}': 5}),
    ("Timeout in use, p99 and recommendation by stage", {'{stage="codegen"}': 120}),  # the largest
    ("Timeout in use, p99 and recommendation by stage", {'{stage="codegen"}': 90}),
    ("Timeout in use, p99 and recommendation by stage", {'{stage="codegen"}': 135}),
    # codegen: 2 timeouts / 4 finished tasks a second; review: 3 timeouts / 1 failure.
    ("Timeout hit share by stage", {'{stage="codegen"}': 0.5, '{stage="review"}': 3}),
    ("Split tasks rescued and failed by stage", {'{stage="codegen"}': 3}),
    ("Split tasks rescued and failed by stage", {'{stage="codegen"}': 1, '{stage="review"}': 0.5}),
    ("Rescue ratio by stage", {'{stage="codegen"}': 0.75, '{stage="review"}': 0}),
    ("Fallback chunk-hours by stage", {'{stage="codegen"}': 10, '{stage="review"}': 1}),
    ("Cost per rescued task by stage", {'{stage="codegen"}': 0.25}),  # $0.75 / 3; review rescues none
    ("Chunk queue wait p95 by agent", {'{agent="a"}': 0.475, '{agent="b"}': 28.5}),  # 0.5 · 0.95, 30 · 0.95
    ("Saturation by agent", {'{agent="a"}': 0.75, '{agent="b"}': 0}),  # a: 3 / 4; idle has no running series
    ("Time since last seen by agent", {'{agent="a"}': 0, '{agent="b"}': 600}),
    (
        "Model tokens by agent and type",
        {'{agent="a", model="gpt-4o", type="input"}': 10, '{agent="a", model="gpt-4o", type="output"}': 2},
    ),
    ("Model cost by agent and model", {'{agent="a", model="gpt-4o"}': 900}),  # $0.25 a second, per hour
]


def test_every_query_gives_the_expected_numbers_in_prometheus(
    dashboard: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    """promtool evaluates each panel query with Prometheus' engine: a parse error or a wrong value fails."""
    queries = panel_queries(dashboard)
    assert [title for title, _ in queries] == [title for title, _ in _EXPECTED]
    tests = [
        {
            # promtool compares exactly: the error-budget row divides by the budget, so round off float noise.
            "expr": _rounded(title, expand_variables(expr, rate_interval="5m", range_="1h")),
            "eval_time": "60m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in expected.items()],
        }
        for (title, expr), (_, expected) in zip(queries, _EXPECTED, strict=True)
    ]
    output = promtool_expressions(promtool, tmp_path / "dashboard-queries-test.yml", _SERIES, tests)
    assert "SUCCESS" in output


# The targets panel_queries leaves out by default: each anomaly band's upper and lower edge.
_NEED_A_WEEK: list[tuple[str, str]] = [
    ("Task splits by agent", 'sum(eddie:anomaly:splits:upper{job=~"$job"})'),
    ("Task splits by agent", 'sum(eddie:anomaly:splits:lower{job=~"$job"})'),
    ("Timeout events by agent and stage", 'sum(eddie:anomaly:timeouts:upper{job=~"$job"})'),
    ("Timeout events by agent and stage", 'sum(eddie:anomaly:timeouts:lower{job=~"$job"})'),
    ("Task execution time by stage", 'max(eddie:anomaly:latency_p99:upper{job=~"$job"})'),
    ("Task execution time by stage", 'min(eddie:anomaly:latency_p99:lower{job=~"$job"})'),
    ("Success rate by stage", '1 - min(eddie:anomaly:failure_ratio:lower{job=~"$job"})'),
    ("Success rate by stage", '1 - max(eddie:anomaly:failure_ratio:upper{job=~"$job"})'),
]


def test_only_the_anomaly_bands_are_left_to_the_week_long_evaluation(dashboard: dict[str, Any]) -> None:
    everything = panel_queries(dashboard, history=True)
    assert [query for query in everything if query not in panel_queries(dashboard)] == _NEED_A_WEEK


def _rounded(title: str, expr: str) -> str:
    return f"round({expr}, 0.0001)" if title.startswith(("Task success:", "Task latency:")) else expr
