"""`eddie-otel recommend` over a stand-in for Prometheus' answers: what it recommends, and when it says nothing."""

from __future__ import annotations

import json

import pytest

from eddie_otel.ops import recommend
from eddie_otel.ops.prometheus_api import Vector

JOB = "eddie-agents"


class Answers:
    """A PrometheusAPI stand-in: per stage, the number each of the command's queries yields."""

    def __init__(self, stages: dict[str, dict[str, float]]) -> None:
        self.stages = stages
        self.asked: list[str] = []

    def _what(self, expr: str) -> str:
        if expr.startswith("histogram_quantile("):
            q = expr.removeprefix("histogram_quantile(").split(",")[0]
            window = "1d" if "[1d]" in expr else "7d"
            return f"p{int(float(q) * 100)}_{window}"
        if "timeout_events_total" in expr:
            return "hit_share"
        if "task_timeout_seconds" in expr:
            return "timeout"
        if "task_execution_seconds_count" in expr:
            return "active" if expr.endswith("> 0") else "tasks_1d"
        raise AssertionError(f"unexpected query {expr}")

    def query(self, expr: str) -> Vector:
        self.asked.append(expr)
        what = self._what(expr)
        return [({"job": JOB, "stage": stage}, values[what]) for stage, values in self.stages.items() if what in values]


def _stage(tasks_1d: float, p99: float, timeout: float = 60.0, share: float = 0.0) -> dict[str, float]:
    quantiles = {f"p{q}_{w}": p99 * q / 99 for q in (50, 95, 99) for w in ("1d", "7d")}
    return {"active": tasks_1d * 7, "tasks_1d": tasks_1d, "timeout": timeout, "hit_share": share, **quantiles}


def test_enough_tasks_give_the_margin_over_the_day_p99() -> None:
    rows = recommend.recommendations(Answers({"plan": _stage(500, 58.0, share=0.2)}), JOB)  # type: ignore[arg-type]
    assert [tuple(row) for row in rows] == [recommend.FIELDS]
    assert rows[0]["recommended_seconds"] == pytest.approx(87.0)
    assert rows[0]["reason"] == "too tight"


def test_too_few_tasks_in_the_day_recommend_nothing() -> None:
    """Below MIN_TASKS a p99 is shown but nothing is recommended, as in process below its minimum of samples."""
    answers = Answers({"review": _stage(recommend.MIN_TASKS - 1, 80.0, timeout=120.0)})
    row = recommend.recommendations(answers, JOB)[0]  # type: ignore[arg-type]
    assert row["p99_1d"] == 80.0
    assert row["recommended_seconds"] is None
    assert row["reason"] == "not enough data"


def test_queries_are_narrowed_to_the_job_and_count_new_series_from_zero() -> None:
    answers = Answers({"plan": _stage(500, 58.0)})
    recommend.recommendations(answers, JOB)  # type: ignore[arg-type]
    assert all('job="eddie-agents"' in expr for expr in answers.asked)
    counting = [expr for expr in answers.asked if "_total" in expr or "_count" in expr]
    assert counting
    # Counted as the fleet summary counts: a series that appears in the window with its first count counts it.
    assert all("last_over_time(" in expr and "offset" in expr for expr in counting)


def test_table_says_which_stages_have_too_little_data(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = Answers({"plan": _stage(500, 58.0, share=0.2), "review": _stage(10, 80.0, timeout=120.0)})
    monkeypatch.setattr(recommend, "PrometheusAPI", lambda url: answers)
    assert recommend.recommend_command(prometheus_url="http://127.0.0.1:9090", job=JOB, as_json=False) == 0
    out = capsys.readouterr().out
    assert (
        f"review (job {JOB}): too little data for a recommendation, fewer than {recommend.MIN_TASKS} tasks"
        " in the last day"
    ) in out
    assert "plan (job" not in out
    assert recommend.recommend_command(prometheus_url="http://127.0.0.1:9090", job=JOB, as_json=True) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["recommended_seconds"] for row in rows] == [pytest.approx(87.0), None]
