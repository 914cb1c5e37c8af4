"""What `promql.sum_counted` counts, series by series, in Prometheus' own engine (`promtool test rules`).

Each instance below is one shape a series can take in a window: steady, new, short-lived,
restarted before the window, restarted inside it, or missing a scrape at the window's start.
"""

from __future__ import annotations

from pathlib import Path

from eddie_otel.ops import promql
from eddie_otel.ops.dashboard import build_dashboard, expand_variables, panel_queries
from tests.support.prometheus_server import promtool_expressions

# One sample a minute from 0 to 70 min; evaluated at 70 min over 1 h, so the window starts at 10 min.
_SERIES = {
    # 10 at the window's start, 70 at its end.
    'timeout_events_total{instance="steady", agent="a", stage="s", reason="r"}': "0+1x70",
    # Appears at 40 min already holding 5: increase() sees nothing.
    'timeout_events_total{instance="new", agent="a", stage="s", reason="r"}': "_x40 5x30",
    # Appears at 50 min with 3, gone two minutes later (a process that worked once and stopped).
    'timeout_events_total{instance="short", agent="a", stage="s", reason="r"}': "_x50 3 3 stale",
    # 100 until 9 min, restarted at the window's start: 4 from 11 min on.
    'timeout_events_total{instance="restarted", agent="a", stage="s", reason="r"}': "100x9 _ 4x59",
    # Restarted inside the window: 10 → 40, then 0 → 29 (increase() handles the reset).
    'timeout_events_total{instance="reset", agent="a", stage="s", reason="r"}': "0+1x40 0+1x29",
    # A failed scrape (a stale marker) exactly at the window's start: 9 before it, 70 at the end.
    'timeout_events_total{instance="gap", agent="a", stage="s", reason="r"}': "0+1x9 stale 11+1x59",
    # Nothing new in the window, gone long before it.
    'timeout_events_total{instance="gone", agent="a", stage="s", reason="r"}': "7x3 stale",
}
_COUNTED = {"steady": 60, "new": 5, "short": 3, "restarted": 4, "reset": 59, "gap": 61}


def _promtool(promtool: str, tmp_path: Path, tests: list[dict[str, object]]) -> None:
    promtool_expressions(promtool, tmp_path / "counting-test.yml", _SERIES, tests)


def test_every_shape_of_series_counts_what_it_counted_in_the_window(promtool: str, tmp_path: Path) -> None:
    by_instance = promql.sum_counted(promql.TIMEOUT_EVENTS, "1h", ("instance",))
    _promtool(
        promtool,
        tmp_path,
        [
            {
                "expr": by_instance,
                "eval_time": "70m",
                "exp_samples": [
                    {"labels": f'{{instance="{instance}"}}', "value": count} for instance, count in _COUNTED.items()
                ],
            },
            # The dashboard's stat panel over the same hour: every one of them, per hour.
            {
                "expr": expand_variables(dict(panel_queries(build_dashboard()))["Timeouts per hour"], range_="1h"),
                "eval_time": "70m",
                "exp_samples": [{"labels": "{}", "value": sum(_COUNTED.values())}],
            },
            # Over the last 5 minutes: only the series that grew in them.
            {
                "expr": promql.sum_counted(promql.TIMEOUT_EVENTS, "5m", ("instance",)),
                "eval_time": "70m",
                "exp_samples": [
                    {"labels": f'{{instance="{instance}"}}', "value": value}
                    for instance, value in (("steady", 5), ("new", 0), ("restarted", 0), ("reset", 5), ("gap", 5))
                ],
            },
        ],
    )
