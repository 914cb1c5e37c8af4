"""`eddie-otel recommend` end to end, against a real Prometheus holding a week of a fleet's data.

Uses the real `promtool` (tsdb create-blocks-from openmetrics) and the real `prometheus` server
(Debian's prometheus package); a missing one fails these tests rather than skipping them. A
simulated week of job eddie-agents (tests/support/backfill.py), sampled every minute up to a few
minutes ago, is backfilled into a fresh storage directory; Prometheus serves it (with the
`eddie:task_timeout_recommended_seconds` rule loaded) and the command runs as a subprocess
against it. Four stages:

- plan: a 60 s timeout that about 18 % of the tasks hit: too tight, the recommendation above it;
- codegen: timeouts of 1800 s and 1200 s on two instances, tasks of seconds: too loose;
- test: a 300 s timeout about right, a little slower in the last day than the week before, and
  its first timeouts (a few per thousand) in the last day, so their series is new in the window;
- review: a task every 45 minutes, 32 a day: too little data for a recommendation.

The expected percentiles are Prometheus' histogram_quantile interpolation over the generated
buckets, and the hit share the generated timeouts over finished tasks, computed here in Python.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from eddie_otel.ops import recommend
from tests.conftest import free_port
from tests.support.backfill import Fleet, Stage
from tests.support.prometheus_server import PrometheusServer

JOB = "eddie-agents"
STEP = 60
DAY = 86_400.0
WEEK = 7 * DAY
# A week and three hours of samples, the last one a little over four minutes before the data is made.
SPAN = int(WEEK) + 3 * 3600
LAST_SAMPLE_AGO = 260
COMMAND = [sys.executable, "-m", "eddie_otel", "recommend"]
A = "agent-a:9464"
B = "agent-b:9464"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package prometheus (this test needs the real one)")
    return path


def _stages(now: int) -> list[Stage]:
    last_day = now - DAY
    since_20h = now - 20 * 3600

    def plan(at: int, rng: random.Random) -> float:
        # 18 % would take longer than the 60 s timeout.
        return rng.uniform(61, 200) if rng.random() < 0.18 else rng.uniform(3, 55)

    def codegen(at: int, rng: random.Random) -> float:
        return min(rng.lognormvariate(2.0, 0.6), 500.0)

    def test(at: int, rng: random.Random) -> float:
        draw = rng.random()
        if at > since_20h and draw < 0.003:
            return rng.uniform(320, 500)  # the first timeouts ever, in the last 20 hours
        slow = 0.018 if at > last_day else 0.008  # the last day is slower than the week before
        return rng.uniform(125, 280) if draw > 1 - slow else rng.uniform(15, 110)

    def review(at: int, rng: random.Random) -> float:
        return rng.uniform(20, 90)

    return [
        Stage("plan", A, 60, lambda at, rng: rng.randint(2, 6), plan, failure_share=0.02),
        Stage("codegen", A, 1800, lambda at, rng: rng.randint(1, 5), codegen, failure_share=0.05),
        Stage("codegen", B, 1200, lambda at, rng: rng.randint(1, 5), codegen, failure_share=0.05),
        Stage("test", A, 300, lambda at, rng: rng.randint(2, 4), test, failure_share=0.01),
        Stage("review", A, 120, lambda at, rng: int(at // 60 % 45 == 0), review),
    ]


@dataclass
class Backfilled:
    fleet: Fleet
    prometheus: PrometheusServer
    # When the JSON run started, and what it printed: one object per stage.
    asked_at: float
    rows: dict[str, dict[str, Any]]


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    """A Prometheus over a backfilled week of job eddie-agents, and `recommend --json` run once against it."""
    promtool = _tool("promtool")
    prometheus_binary = _tool("prometheus")
    workdir = tmp_path_factory.mktemp("recommend-backfill")
    now = int(time.time())
    last = now - LAST_SAMPLE_AGO
    steps = SPAN // STEP + 1
    fleet = Fleet(JOB, _stages(last), last - (steps - 1) * STEP, STEP, steps)
    data = workdir / "week.om"
    data.write_text(fleet.openmetrics(), encoding="utf-8")
    # Blocks far longer than the default 2 h: promtool reads the whole file once per block range.
    backfill = ["tsdb", "create-blocks-from", "openmetrics", "--quiet", "--max-block-duration=500h"]
    created = subprocess.run(
        [promtool, *backfill, str(data), str(workdir / "prometheus" / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    data.unlink()
    rules = workdir / "recommend-rules.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "recommend",
                        "rules": [{"record": r.record, "expr": r.expr} for r in recommend.recording_rules()],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    server = PrometheusServer(
        prometheus_binary,
        workdir / "prometheus",
        [],
        job="nothing-scraped",
        rule_files=[rules],
        extra_args=["--storage.tsdb.retention.time=30d"],
    )
    try:
        asked_at = time.time()
        result = _run("--prometheus-url", server.url, "--job", JOB, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == ""
        rows = {row["stage"]: row for row in json.loads(result.stdout)}
        yield Backfilled(fleet, server, asked_at, rows)
    finally:
        server.stop()


def _close(actual: float | None, expected: float, rel: float = 0.01) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=rel)


def test_every_stage_has_one_object_with_the_documented_keys(backfilled: Backfilled) -> None:
    assert sorted(backfilled.rows) == ["codegen", "plan", "review", "test"]
    for stage, row in backfilled.rows.items():
        assert tuple(row) == recommend.FIELDS
        assert row["job"] == JOB
        assert row["stage"] == stage
    # The timeout in use is the largest any instance reports: codegen runs with 1800 s on one, 1200 s on the other.
    assert {stage: row["timeout_seconds"] for stage, row in backfilled.rows.items()} == {
        "plan": 60,
        "codegen": 1800,
        "test": 300,
        "review": 120,
    }


@pytest.mark.parametrize("stage", ["plan", "codegen", "test"])
def test_percentiles_match_the_generated_buckets(backfilled: Backfilled, stage: str) -> None:
    """p50/p95/p99 over 1 d and 7 d: histogram_quantile's interpolation of the week's buckets, over both instances."""
    row = backfilled.rows[stage]
    for window, seconds in (("1d", DAY), ("7d", WEEK)):
        for q in (0.5, 0.95, 0.99):
            expected = backfilled.fleet.quantile(q, backfilled.asked_at, seconds, stage=stage)
            name = f"p{int(q * 100)}_{window}"
            assert _close(row[name], expected), (name, row[name], expected)
    # The test stage's last day is slower than its week: the two windows are told apart.
    if stage == "test":
        assert row["p99_1d"] > 1.1 * row["p99_7d"]


@pytest.mark.parametrize("stage", ["plan", "codegen", "test", "review"])
def test_hit_share_is_the_generated_timeouts_over_finished_tasks(backfilled: Backfilled, stage: str) -> None:
    fleet, at = backfilled.fleet, backfilled.asked_at
    timeouts = fleet.total("timeout_events", at, DAY, stage=stage)
    finished = fleet.total("task_success", at, DAY, stage=stage) + fleet.total("task_failure", at, DAY, stage=stage)
    share = backfilled.rows[stage]["hit_share"]
    assert share is not None
    assert math.isclose(share, timeouts / finished, rel_tol=0.01, abs_tol=1e-4), (share, timeouts, finished)
    if stage == "test":
        # Timeouts appeared in the last day only: their series is new in the window, and each one counts.
        assert timeouts >= 3


def test_too_tight_stage_is_recommended_more_than_its_timeout(backfilled: Backfilled) -> None:
    row = backfilled.rows["plan"]
    assert row["hit_share"] > 0.1
    assert row["reason"] == "too tight"
    assert row["p99_1d"] >= 0.9 * row["timeout_seconds"]
    assert row["recommended_seconds"] == pytest.approx(recommend.MARGIN * row["p99_1d"])
    assert row["recommended_seconds"] > 1.5 * row["timeout_seconds"]


def test_too_loose_stage_is_recommended_far_less_than_its_timeout(backfilled: Backfilled) -> None:
    row = backfilled.rows["codegen"]
    assert row["reason"] == "too loose"
    assert row["p99_1d"] < row["timeout_seconds"] / 3
    assert row["recommended_seconds"] == pytest.approx(recommend.MARGIN * row["p99_1d"])
    assert row["recommended_seconds"] < row["timeout_seconds"] / 10


def test_right_stage_is_recommended_near_its_timeout(backfilled: Backfilled) -> None:
    row = backfilled.rows["test"]
    assert row["reason"] == "ok"
    assert 0 < row["hit_share"] < 0.05
    assert row["recommended_seconds"] == pytest.approx(recommend.MARGIN * row["p99_1d"])
    assert 0.75 * row["timeout_seconds"] <= row["recommended_seconds"] <= 1.25 * row["timeout_seconds"]


def test_thin_stage_says_so_and_recommends_nothing(backfilled: Backfilled) -> None:
    row = backfilled.rows["review"]
    tasks = backfilled.fleet.total("task_execution_seconds", backfilled.asked_at, DAY, "_count", stage="review")
    assert 0 < tasks < recommend.MIN_TASKS
    assert row["reason"] == "not enough data"
    assert row["recommended_seconds"] is None
    # What there is is still shown.
    assert row["p99_7d"] is not None


def test_recording_rule_is_the_margin_over_the_day_p99(backfilled: Backfilled) -> None:
    server = backfilled.prometheus
    expr = f'{recommend.RECORD}{{job="{JOB}"}}'
    server.wait_until(lambda: len(server.query(expr)) == 4, 15, f"{recommend.RECORD} was not recorded")
    recorded = {item["metric"]["stage"]: float(item["value"][1]) for item in server.query(expr)}
    for stage, row in backfilled.rows.items():
        assert _close(recorded[stage], recommend.MARGIN * row["p99_1d"]), (stage, recorded[stage], row["p99_1d"])


def test_table_names_every_stage_and_says_when_the_data_is_too_thin(backfilled: Backfilled) -> None:
    result = _run("--prometheus-url", backfilled.prometheus.url, "--job", JOB)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["JOB", "STAGE", "TIMEOUT"]
    by_stage = {line.split()[1]: line for line in lines[1:5]}
    assert sorted(by_stage) == ["codegen", "plan", "review", "test"]
    assert by_stage["plan"].rstrip().endswith("too tight")
    assert by_stage["codegen"].rstrip().endswith("too loose")
    assert by_stage["test"].rstrip().endswith("ok")
    assert by_stage["review"].rstrip().endswith("not enough data")
    assert (
        "review (job eddie-agents): too little data for a recommendation, "
        f"fewer than {recommend.MIN_TASKS} tasks in the last day" in result.stdout
    )


def test_another_job_has_nothing(backfilled: Backfilled) -> None:
    result = _run("--prometheus-url", backfilled.prometheus.url, "--job", "other-agents")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no stage had tasks in the last 7 days in job other-agents\n"


def test_unreachable_prometheus_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _run("--prometheus-url", url, "--json", timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("eddie-otel recommend: error: ")
    assert url in lines[0]
    assert "Traceback" not in result.stderr


def test_help_says_what_it_prints() -> None:
    result = _run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for words in ("--prometheus-url", "--job", "--json", "p50/p95/p99 over 1 d and 7 d", "not enough data"):
        assert words in text
