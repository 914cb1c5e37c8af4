"""Timeouts across the fleet: the recording rule, the two alerts, and `eddie-otel recommend`.

The fleet's recommendation of a stage is 1.5 x the p99 of task_execution_seconds over a day,
per scrape job and stage (the recording rule `eddie:task_timeout_recommended_seconds`; no
clamps in Prometheus). `eddie-otel recommend` asks a Prometheus, for each job and stage with
tasks in the last 7 days: the timeout in use (the largest any instance reports), the p50, p95
and p99 over 1 d and 7 d (from the histogram's buckets, interpolated within a bucket as
`histogram_quantile` does), the hit share over 1 d (timeouts over finished tasks), the
recommendation and one word on the timeout, the same as the in-process summary's
(`eddie_otel.timeouts.verdict`): "too tight" (hit share above 5 %), "too loose" (the 1 d p99
below a third of the timeout), "ok", or "not enough data" (fewer than 50 tasks in the day, the
in-process default of EDDIE_OTEL_TIMEOUT_MIN_SAMPLES), with no recommendation then, as in process.

The command and EddieTimeoutTooTight count tasks and timeouts with the fleet summary's builders
(`promql.sum_counted`, `promql.hit_share`, which count with `promql.increase_from_zero`):
eddie-otel's counter series appear already holding their first count, so a stage's first
timeout in the day, or its first task in the week, counts; `increase()` would miss it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from eddie_otel.errors import ConfigurationError, EddieOtelError
from eddie_otel.ops import promql
from eddie_otel.ops.credentials import url_redactor
from eddie_otel.ops.prometheus_api import PrometheusAPI, Vector
from eddie_otel.ops.promql import TASK_EXECUTION, TASK_TIMEOUT, Exact, Where, aggregate, selector
from eddie_otel.ops.rule import Recording, Rule
from eddie_otel.timeouts import NOT_ENOUGH_DATA, TOO_TIGHT_SHARE, verdict

__all__ = [
    "FIELDS",
    "MARGIN",
    "MIN_TASKS",
    "RECORD",
    "alert_rules",
    "recommend_command",
    "recommendations",
    "recording_rules",
]

# The fleet's margin over the day's p99 (the in-process default of EDDIE_OTEL_TIMEOUT_MARGIN).
MARGIN = 1.5
# Tasks of a stage in a day below which nothing is said about its timeout.
MIN_TASKS = 50
RECORD = "eddie:task_timeout_recommended_seconds"
BY = ("job", "stage")
# The keys of each object `--json` prints, in order.
FIELDS = (
    "job",
    "stage",
    "timeout_seconds",
    "p50_1d",
    "p95_1d",
    "p99_1d",
    "p50_7d",
    "p95_7d",
    "p99_7d",
    "hit_share",
    "recommended_seconds",
    "reason",
)
# The alerts: a hit share above 5 % over an hour while the hour's p99 is near the timeout (0.9 x);
# a day's p99 below a third of the timeout for an hour.
TIGHT_WINDOW = "1h"
TIGHT_P99_FRACTION = 0.9
TIGHT_FOR = "10m"
LOOSE_WINDOW = "1d"
LOOSE_FOR = "1h"


def _where(job: str | None) -> Where:
    """The series of `job` only (every job when None)."""
    return None if job is None else {"job": Exact(job)}


def quantile(q: float, window: str, job: str | None = None) -> str:
    """The `q` quantile of task durations over `window`, per job and stage."""
    return promql.quantile(q, TASK_EXECUTION, window, BY, where=_where(job))


def tasks_counted(window: str, job: str | None = None) -> str:
    """Tasks finished over `window`, per job and stage (`promql.sum_counted`: a series new in it counts from zero)."""
    return promql.sum_counted(TASK_EXECUTION, window, BY, where=_where(job), suffix="_count")


def timeout_in_use(job: str | None = None, window: str = "1h") -> str:
    """The timeout in use per job and stage: the largest any instance reported in the last `window`."""
    return aggregate("max", f"max_over_time({selector(TASK_TIMEOUT, _where(job))}[{window}])", BY)


def recording_rules() -> list[Recording]:
    """`eddie:task_timeout_recommended_seconds`: 1.5 x the day's p99, per job and stage."""
    return [Recording(RECORD, f"{MARGIN:g} * {quantile(0.99, '1d')}")]


def alert_rules() -> list[Rule]:
    """EddieTimeoutTooTight and EddieTimeoutTooLoose, per job and stage."""
    timeout = "max by (job, stage) (task_timeout_seconds)"
    return [
        Rule(
            alert="EddieTimeoutTooTight",
            expr=(
                f"({promql.hit_share(TIGHT_WINDOW, BY)}) > {TOO_TIGHT_SHARE:g}"
                f" and on (job, stage) {quantile(0.99, TIGHT_WINDOW)} >= {TIGHT_P99_FRACTION:g} * {timeout}"
            ),
            for_=TIGHT_FOR,
            severity="warning",
            summary="The timeout of stage {{ $labels.stage }} is too tight",
            description=(
                "{{ $value | humanizePercentage }} of the tasks of stage {{ $labels.stage }} finished over the last "
                f"hour timed out (threshold {TOO_TIGHT_SHARE:.0%}), and their p99 is at least "
                f"{TIGHT_P99_FRACTION:.0%} of the timeout: the timeout cuts off work that would succeed. "
                "Run `eddie-otel recommend` for a timeout."
            ),
            panel="Timeout in use, p99 and recommendation by stage",
        ),
        Rule(
            alert="EddieTimeoutTooLoose",
            expr=f"{quantile(0.99, LOOSE_WINDOW)} < {timeout} / 3",
            for_=LOOSE_FOR,
            severity="warning",
            summary="The timeout of stage {{ $labels.stage }} is too loose",
            description=(
                "The p99 of stage {{ $labels.stage }} over the last day is {{ $value | humanizeDuration }}, "
                "below a third of its timeout: a stuck task holds its agent far longer than needed. "
                "Run `eddie-otel recommend` for a timeout."
            ),
            panel="Timeout in use, p99 and recommendation by stage",
        ),
    ]


def _by_key(vector: Vector) -> dict[tuple[str, str], float]:
    found = {}
    for labels, value in vector:
        if math.isfinite(value):
            found[(labels.get("job", ""), labels.get("stage", ""))] = value
    return found


def recommendations(api: PrometheusAPI, job: str | None = None) -> list[dict[str, Any]]:
    """One object per job and stage with tasks in the last 7 days, with the keys of FIELDS (None: unknown)."""
    active = _by_key(api.query(f"{tasks_counted('7d', job)} > 0"))
    tasks_1d = _by_key(api.query(tasks_counted("1d", job)))
    timeout = _by_key(api.query(timeout_in_use(job)))
    share = _by_key(api.query(promql.hit_share("1d", BY, where=_where(job))))
    quantiles = {
        f"p{int(q * 100)}_{window}": _by_key(api.query(quantile(q, window, job)))
        for window in ("1d", "7d")
        for q in (0.5, 0.95, 0.99)
    }
    rows = []
    for key in sorted(active):
        p99 = quantiles["p99_1d"].get(key)
        enough = tasks_1d.get(key, 0.0) >= MIN_TASKS and p99 is not None
        row: dict[str, Any] = {"job": key[0], "stage": key[1], "timeout_seconds": timeout.get(key)}
        row.update({name: values.get(key) for name, values in quantiles.items()})
        row["hit_share"] = share.get(key)
        # Too few tasks in the day: nothing is recommended (as in process, below EDDIE_OTEL_TIMEOUT_MIN_SAMPLES).
        row["recommended_seconds"] = MARGIN * p99 if enough and p99 is not None else None
        row["reason"] = verdict(row["timeout_seconds"], p99, row["hit_share"]) if enough else NOT_ENOUGH_DATA
        rows.append({name: row[name] for name in FIELDS})
    return rows


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}s" if value < 100 else f"{value:.0f}s"


def _table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        "JOB",
        "STAGE",
        "TIMEOUT",
        "P50 1D",
        "P95 1D",
        "P99 1D",
        "P50 7D",
        "P95 7D",
        "P99 7D",
        "HITS 1D",
        "RECOMMENDED",
        "REASON",
    )
    lines = [header]
    for row in rows:
        share = row["hit_share"]
        lines.append(
            (
                row["job"],
                row["stage"],
                _seconds(row["timeout_seconds"]),
                *(_seconds(row[name]) for name in FIELDS[3:9]),
                "-" if share is None else f"{share:.1%}",
                _seconds(row["recommended_seconds"]),
                row["reason"],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def recommend_command(*, prometheus_url: str, job: str | None, as_json: bool) -> int:
    """Handler of `eddie-otel recommend`: 0 printed, 1 Prometheus failed, 2 a bad URL; errors are one line."""
    redact = url_redactor([prometheus_url])
    try:
        api = PrometheusAPI(prometheus_url)
    except ConfigurationError as exc:
        print(redact(f"eddie-otel recommend: error: {exc}"), file=sys.stderr)
        return 2
    try:
        rows = recommendations(api, job)
    except EddieOtelError as exc:
        # One line, without the PromQL: the messages name the URL and the HTTP answer only.
        message = " ".join(str(exc).split()).split("?query=")[0]
        print(redact(f"eddie-otel recommend: error: {message}"), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no stage had tasks in the last 7 days{'' if job is None else f' in job {job}'}")
    else:
        print(_table(rows))
        for row in rows:
            if row["reason"] == NOT_ENOUGH_DATA:
                print(
                    f"{row['stage']} (job {row['job']}): too little data for a recommendation, "
                    f"fewer than {MIN_TASKS} tasks in the last day"
                )
    return 0
