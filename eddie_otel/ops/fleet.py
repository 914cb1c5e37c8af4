"""The summary of a whole fleet, computed with PromQL over every instance Prometheus scrapes.

`fleet_summary()` answers with the schema of GET /metrics/summary (`eddie_otel.summary.Summary`)
plus `instances` and `source: "prometheus"`:

- `totals`: each counter's current value summed over every live instance (a target that is up).
- `agents`: per agent, over the live instances: `active` and `executed` (agent_active_tasks and
  agent_tasks_executed_total, summed), `capacity` (agent_capacity summed: the slots the agent's
  instances said they have; null when none did), `saturation` (`active` / `capacity`,
  `promql.saturation`; null without a capacity) and `last_seen` (agent_last_seen_timestamp_seconds,
  the latest of any instance, Unix seconds to within 10 s; null when none reports one).
- `fallback`: the process summary's since-start counts summed over the live instances, as the
  totals are: the split tasks that finished (`split_tasks`), of which `rescued` and `failed`
  (task_fallback_total by outcome), `rescue_ratio` = rescued / (rescued + failed) (null with no
  split task), `chunk_seconds` (fallback_chunk_seconds_total) and `cost_usd`
  (fallback_cost_usd_total).
- `latency`: per stage, p50/p95/p99 of task_execution_seconds over the last hour (from the
  histogram's buckets, so a value is a bucket interpolation, not an observed duration) and
  `samples`, the tasks that finished in that hour.
- `timeouts`: per stage with a timeout in use, tasks in the last hour or a fleet recommendation:
  `timeout_seconds` (task_timeout_seconds, the largest a live instance reports; null when none
  does), `recommended_seconds` (the recording rule `eddie:task_timeout_recommended_seconds`, 1.5 x
  the day's p99 per job and stage, the largest over the jobs; null when it has no value, e.g. the
  rule is not loaded, and when the reason is "not enough data"), `samples` (the tasks that
  finished in the last hour, successful or not) and their `p99` (as `latency`'s; null with none),
  `hit_share` (the stage's timeouts over its finished tasks in the last hour, `promql.hit_share`;
  null with none finished) and `reason`, the words of
  `eddie_otel.timeouts.verdict` and `eddie-otel recommend`: "too tight" (hit share above 5 %),
  "too loose" (p99 below a third of the timeout), "ok", or "not enough data" (fewer than
  `recommend.MIN_TASKS`, 50, tasks in the hour). Unlike the process summary's, whose p99 and
  recommendation come from its last successful durations and whose hit share is since start,
  these count the fleet's last hour, failures included.
- `windows`: `5m` and `1h`, what each counter counted over the window and that divided by its
  length (`covered_seconds` is the window's length: Prometheus keeps the fleet's history, whatever
  the age of each process).
- `indicators`: `promql.indicators` over the last hour (`window: "1h"`), the very queries of the
  dashboard's stat panels (which ask them over the dashboard's time range).
- `generated_at`: when the summary was computed, in the format of the process summary's.
- `instances`: every target of the job(s): `job`, `instance`, `service_instance_id` (from
  `target_info`, null when the target exposes none) and `health` ("up" or "down").

With `job`, only that scrape job counts, and a job Prometheus has no target of is an error
(`NoSuchJob`) that names the jobs it does scrape; without, every job whose targets expose
`target_info`.

How windows, latency, timeouts and indicators count. An eddie-otel series appears when its first
event is recorded, already holding that first count: there is no zero sample before it, so
`increase()` (and `rate()`) see no step there, and short-lived or bursty processes, whose series
are all new, would count for nothing. Every window here is `promql.sum_counted` (histogram buckets
and counts, and the timeouts' tasks and hits, too): per series, its last value in the window minus
its value at the window's start, a series absent at the start counted from zero. That is exact
(`increase()` extrapolates to the window's edges), counts processes that stopped during the window
up to their last scrape, and skips failed scrapes. Its limits:

- Work a process recorded after its last scrape is never seen (a scrape interval's worth at exit).
- A series that restarted from zero inside the window (a process restarted on the same address
  with the same labels) falls back to `increase()`, Prometheus' extrapolated estimate; one that
  restarted just before the first sample of the window counts from zero (exact).
- A target unreachable across the window's start for longer than `promql.START_LOOKBACK` (5 min)
  counts as new: its whole value is counted again. A restart on the same address whose first
  scraped value is above the old one is undercounted.
- Totals, `fallback`, `agents` and the timeouts in use read the live instances only: a process
  that stopped leaves them but stays in the windows, latency, indicators and the timeouts' counts.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from typing_extensions import TypedDict

from eddie_otel.catalogue import METRICS, Kind
from eddie_otel.errors import EddieOtelError
from eddie_otel.ops import promql, recommend
from eddie_otel.ops.credentials import url_redactor
from eddie_otel.ops.prometheus_api import PrometheusAPI, Vector
from eddie_otel.summary import (
    WINDOWS,
    AgentLoad,
    Fallback,
    Latency,
    StageTimeout,
    Summary,
    Window,
    fallback_summary,
    generated_at,
    indicator,
    whole,
)
from eddie_otel.timeouts import verdict

__all__ = ["INDICATOR_WINDOW", "FleetSummary", "Instance", "NoSuchJob", "fleet_summary", "summary_command"]

# The indicators' window: the dashboard's default time range, and the summary's own hour.
INDICATOR_WINDOW = "1h"
_PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
_COUNTERS = tuple(metric for metric in METRICS if metric.kind is Kind.COUNTER)
# Requests in flight at once: the summary asks a few dozen small queries.
_PARALLEL = 8


class NoSuchJob(EddieOtelError):
    """Prometheus scrapes no target of the job asked for; the message names the jobs it does scrape."""


class Instance(TypedDict):
    """One scrape target of the fleet and whether Prometheus reaches it."""

    job: str
    instance: str
    service_instance_id: str | None
    health: str


class FleetSummary(Summary):
    """The fleet's summary: the schema of GET /metrics/summary plus the instances and the source."""

    instances: list[Instance]
    source: str


def _where(job: str | None) -> dict[str, str]:
    return {"job": re.escape(job)} if job else {}


def _number(value: float | None) -> int | float | None:
    # Counts are whole numbers (3, not 3.0); NaN and infinities (no data) are null.
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return whole(value)


def _scalar(vector: Vector) -> float | None:
    values = [value for _, value in vector if not math.isnan(value)]
    return values[0] if values else None


def _finite(value: float | None) -> float | None:
    # NaN and infinities (a quantile or a ratio of nothing) are null.
    return value if value is not None and math.isfinite(value) else None


def _seconds(timestamp: float | None) -> int | float | None:
    # A timestamp to the millisecond, as the process summary shows it.
    return None if timestamp is None else _number(round(timestamp, 3))


def _by(vector: Vector, label: str) -> dict[str, float]:
    return {labels.get(label, ""): value for labels, value in vector}


def _queries(where: Mapping[str, str]) -> dict[str, str]:
    """Every query the summary asks, by a key of its own."""
    queries: dict[str, str] = {}
    for metric in _COUNTERS:
        # A target that is down keeps its last samples for a few minutes: totals count live instances only.
        queries[f"total:{metric.key}"] = promql.current("sum", metric, where=where, up_only=True)
        for name, _ in WINDOWS:
            queries[f"window:{name}:{metric.key}"] = promql.sum_counted(metric, name, where=where)
    queries["fallback:outcomes"] = promql.current("sum", promql.TASK_FALLBACK, ("outcome",), where=where, up_only=True)
    agent = ("agent",)
    queries["agents:active"] = promql.current("sum", promql.AGENT_ACTIVE_TASKS, agent, where=where, up_only=True)
    queries["agents:executed"] = promql.current("sum", promql.AGENT_TASKS_EXECUTED, agent, where=where, up_only=True)
    queries["agents:capacity"] = promql.current("sum", promql.AGENT_CAPACITY, agent, where=where, up_only=True)
    queries["agents:saturation"] = promql.saturation(agent, where=where, up_only=True, idle_as_zero=True)
    queries["agents:last_seen"] = promql.last_seen(agent, where=where, up_only=True)
    stage = ("stage",)
    queries["timeouts:in_use"] = promql.timeout_in_use(stage, where=where, up_only=True)
    queries["timeouts:recommended"] = promql.recorded("max", recommend.RECORD, recommend.BY, stage, where=where)
    queries["timeouts:hit_share"] = promql.hit_share(INDICATOR_WINDOW, stage, where=where)
    for key, q in _PERCENTILES:
        queries[f"latency:{key}"] = promql.counted_quantile(
            q, promql.TASK_EXECUTION, INDICATOR_WINDOW, stage, where=where
        )
    queries["latency:samples"] = promql.sum_counted(
        promql.TASK_EXECUTION, INDICATOR_WINDOW, stage, where=where, suffix="_count"
    )
    for name, expr in promql.indicators(INDICATOR_WINDOW, where=where).items():
        queries[f"indicator:{name}"] = expr
    queries["instances:ids"] = f"target_info{_job_matcher(where)}"
    return queries


def _job_matcher(where: Mapping[str, str]) -> str:
    job = where.get("job")
    # json.dumps quotes the way PromQL does (a Go string literal).
    return f"{{job=~{json.dumps(job)}}}" if job else ""


def _targets_query(where: Mapping[str, str]) -> str:
    matcher = _job_matcher(where)
    return f"up{matcher}" if matcher else "up and on (job) group by (job) (target_info)"


def _ask(api: PrometheusAPI, queries: Mapping[str, str]) -> dict[str, Vector]:
    with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
        answers = list(pool.map(api.query, queries.values()))
    return dict(zip(queries, answers, strict=True))


def _instances(up: Vector, ids: Vector) -> list[Instance]:
    known = {
        (labels.get("job", ""), labels.get("instance", "")): labels.get("service_instance_id") for labels, _ in ids
    }
    instances: list[Instance] = [
        {
            "job": labels.get("job", ""),
            "instance": labels.get("instance", ""),
            "service_instance_id": known.get((labels.get("job", ""), labels.get("instance", ""))),
            "health": "up" if value == 1 else "down",
        }
        for labels, value in up
    ]
    return sorted(instances, key=lambda item: (item["job"], item["instance"]))


def _jobs_found(api: PrometheusAPI) -> str:
    jobs = sorted({labels.get("job", "") for labels, _ in api.query("group by (job) (up)")})
    return f"the jobs it scrapes: {', '.join(jobs)}" if jobs else "it scrapes no job"


def fleet_summary(prometheus_url: str, job: str | None = None) -> FleetSummary:
    """The fleet's summary from the Prometheus at `prometheus_url`, over scrape job `job` (default: every one).

    Raises ConfigurationError for a bad URL, Unreachable when nothing answers there,
    PrometheusError when Prometheus refuses a query, and NoSuchJob when `job` has no target.
    """
    api = PrometheusAPI(prometheus_url)
    where = _where(job)
    # Asked first and alone: nothing listening, or a job with no target, is one error, not dozens.
    targets = api.query(_targets_query(where))
    if job and not targets:
        raise NoSuchJob(f"Prometheus at {api.url} has no target of job {job!r}; {_jobs_found(api)}")
    answers = _ask(api, _queries(where))
    answers["instances:up"] = targets
    value = {key: _scalar(vector) for key, vector in answers.items()}

    totals = {metric.key: _number(value[f"total:{metric.key}"] or 0.0) or 0 for metric in _COUNTERS}
    samples = _by(answers["latency:samples"], "stage")
    percentiles = {key: _by(answers[f"latency:{key}"], "stage") for key, _ in _PERCENTILES}
    windows: dict[str, Window] = {}
    for name, seconds in WINDOWS:
        counts = {metric.key: value[f"window:{name}:{metric.key}"] or 0.0 for metric in _COUNTERS}
        windows[name] = {
            "seconds": seconds,
            "covered_seconds": seconds,
            "counts": {key: _number(count) or 0 for key, count in counts.items()},
            "rates": {key: count / seconds for key, count in counts.items()},
        }
    indicators = [
        indicator(name, INDICATOR_WINDOW, _number(value[f"indicator:{name}"]))
        for name in promql.indicators(INDICATOR_WINDOW)
    ]
    return {
        "generated_at": generated_at(),
        "totals": totals,
        "agents": _agents(answers),
        "fallback": _fallback(answers, value),
        "latency": _latency(samples, percentiles),
        "timeouts": _timeouts(answers, samples, percentiles["p99"]),
        "windows": windows,
        "indicators": indicators,
        "instances": _instances(answers["instances:up"], answers["instances:ids"]),
        "source": "prometheus",
    }


def _agents(answers: Mapping[str, Vector]) -> dict[str, AgentLoad]:
    """`agents`: per agent any live instance reports, its load, capacity, saturation and last sight."""
    active, executed = _by(answers["agents:active"], "agent"), _by(answers["agents:executed"], "agent")
    capacity, saturation = _by(answers["agents:capacity"], "agent"), _by(answers["agents:saturation"], "agent")
    seen = _by(answers["agents:last_seen"], "agent")
    return {
        agent: {
            "active": _number(active.get(agent, 0.0)) or 0,
            "executed": _number(executed.get(agent, 0.0)) or 0,
            "capacity": _number(capacity.get(agent)),
            "saturation": _finite(saturation.get(agent)),
            "last_seen": _seconds(seen.get(agent)),
        }
        for agent in sorted(active.keys() | executed.keys() | capacity.keys() | seen.keys())
    }


def _fallback(answers: Mapping[str, Vector], value: Mapping[str, float | None]) -> Fallback:
    """`fallback`: the split tasks rescued and failed, chunk seconds and cost, summed over the live instances."""
    outcomes = _by(answers["fallback:outcomes"], "outcome")
    return fallback_summary(
        outcomes.get("rescued", 0.0),
        outcomes.get("failed", 0.0),
        value[f"total:{promql.FALLBACK_CHUNK_SECONDS.key}"] or 0.0,
        value[f"total:{promql.FALLBACK_COST.key}"] or 0.0,
    )


def _latency(samples: Mapping[str, float], percentiles: Mapping[str, Mapping[str, float]]) -> dict[str, Latency]:
    """`latency`: per stage with tasks in the hour, their count and bucket-interpolated percentiles."""
    latency: dict[str, Latency] = {}
    for stage in sorted(samples):
        if samples[stage] > 0 and all(not math.isnan(percentiles[key].get(stage, math.nan)) for key, _ in _PERCENTILES):
            latency[stage] = {
                "samples": round(samples[stage]),
                "p50": percentiles["p50"][stage],
                "p95": percentiles["p95"][stage],
                "p99": percentiles["p99"][stage],
            }
    return latency


def _timeouts(
    answers: Mapping[str, Vector], samples: Mapping[str, float], p99s: Mapping[str, float]
) -> dict[str, StageTimeout]:
    """`timeouts`: per stage with a timeout in use, tasks in the hour or a fleet recommendation."""
    in_use, recommended = _by(answers["timeouts:in_use"], "stage"), _by(answers["timeouts:recommended"], "stage")
    shares = _by(answers["timeouts:hit_share"], "stage")
    counted = {stage for stage, count in samples.items() if count > 0}
    known = {stage for stage, seconds in recommended.items() if _finite(seconds) is not None}
    stages: dict[str, StageTimeout] = {}
    for stage in sorted(in_use.keys() | counted | known):
        tasks = round(samples.get(stage, 0.0))
        timeout, p99, share = _number(in_use.get(stage)), _finite(p99s.get(stage)), _finite(shares.get(stage))
        if tasks == 0:
            p99 = None
        enough = tasks >= recommend.MIN_TASKS and p99 is not None
        stages[stage] = {
            "timeout_seconds": timeout,
            # None where the reason is "not enough data": a number beside those words would contradict them.
            "recommended_seconds": _finite(recommended.get(stage)) if enough else None,
            "samples": tasks,
            "p99": p99,
            "hit_share": share,
            "reason": verdict(timeout, p99, share, enough),
        }
    return stages


def summary_command(*, prometheus_url: str, job: str | None) -> int:
    """Handler of `eddie-otel summary`: print the fleet's summary as JSON; returns the exit status."""
    # PrometheusAPI hides the credentials already; this also covers any other error that quotes the URL.
    redact = url_redactor([prometheus_url])
    try:
        result: Any = fleet_summary(prometheus_url, job)
        if not result["instances"]:
            api = PrometheusAPI(prometheus_url)
            warning = f"no target of Prometheus at {api.url} exposes target_info; {_jobs_found(api)}"
            print(redact(f"eddie-otel summary: warning: {warning}"), file=sys.stderr)
    except EddieOtelError as exc:
        print(redact(f"eddie-otel summary: error: {exc}"), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
