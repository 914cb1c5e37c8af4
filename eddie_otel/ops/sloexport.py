"""`eddie-otel slo`: the objectives as a sloth (prometheus/v1) or OpenSLO (v1) file, for teams that run those tools."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from eddie_otel.objectives import OBJECTIVES, Objective
from eddie_otel.ops import promql, slo, yamlfile

__all__ = ["FORMATS", "SERVICE", "render", "render_openslo", "render_sloth", "slo_command"]

FORMATS = ("sloth", "openslo")
# The OTEL_SERVICE_NAME default: the service every objective belongs to.
SERVICE = "eddie"
_SLOTH_WINDOW = "{{.window}}"
_HEADER = "# The eddie-otel service-level objectives (written by `eddie-otel slo --format {format}`).\n"


def _le(objective: Objective) -> str:
    assert objective.latency_seconds is not None
    return slo.le_matcher(objective.latency_seconds)


def _sloth_events(objective: Objective) -> dict[str, str]:
    window = _SLOTH_WINDOW
    if objective.latency_seconds is None:
        failures = promql.sum_rate(promql.TASK_FAILURE, window)
        return {
            "error_query": failures,
            "total_query": promql.either_sum(failures, promql.sum_rate(promql.TASK_SUCCESS, window)),
        }
    name = promql.TASK_EXECUTION.prometheus_name
    total = f"sum(rate({name}_count[{window}]))"
    return {"error_query": f"{total} - sum(rate({name}_bucket{_le(objective)}[{window}]))", "total_query": total}


def render_sloth(objectives: tuple[Objective, ...] = OBJECTIVES) -> str:
    """The objectives as a sloth `prometheus/v1` spec, with sloth's page (critical) and ticket (warning) alerts."""
    document = {
        "version": "prometheus/v1",
        "service": SERVICE,
        "slos": [
            {
                "name": objective.name,
                "objective": round(objective.objective * 100, 10),
                "description": objective.description,
                "sli": {"events": _sloth_events(objective)},
                "alerting": {
                    "name": objective.alert,
                    "page_alert": {"labels": {"severity": "critical"}},
                    "ticket_alert": {"labels": {"severity": "warning"}},
                },
            }
            for objective in objectives
        ],
    }
    return yamlfile.dump(document, _HEADER.format(format="sloth"))


def _source(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


def _openslo_ratio(objective: Objective) -> dict[str, Any]:
    if objective.latency_seconds is None:
        good = f"sum({promql.TASK_SUCCESS.prometheus_name})"
        total = f"sum({promql.TASK_SUCCESS.prometheus_name}) + sum({promql.TASK_FAILURE.prometheus_name})"
    else:
        name = promql.TASK_EXECUTION.prometheus_name
        good, total = f"sum({name}_bucket{_le(objective)})", f"sum({name}_count)"
    return {"counter": True, "good": _source(good), "total": _source(total)}


def render_openslo(objectives: tuple[Objective, ...] = OBJECTIVES) -> str:
    """The objectives as OpenSLO v1 `SLO` documents (rolling window, occurrences budgeting)."""
    documents = [
        {
            "apiVersion": "openslo/v1",
            "kind": "SLO",
            "metadata": {"name": objective.name, "displayName": slo.panel_titles(objective)[1].split(":")[0]},
            "spec": {
                "description": objective.description,
                "service": SERVICE,
                "indicator": {
                    "metadata": {"name": f"{objective.name}-ratio"},
                    "spec": {"ratioMetric": _openslo_ratio(objective)},
                },
                "timeWindow": [{"duration": objective.period, "isRolling": True}],
                "budgetingMethod": "Occurrences",
                "objectives": [{"displayName": objective.name, "target": objective.objective}],
            },
        }
        for objective in objectives
    ]
    body = "---\n".join(yamlfile.dump(document) for document in documents)
    return _HEADER.format(format="openslo") + body


def render(format: str) -> str:
    """The objectives in `format` (one of FORMATS)."""
    if format == "sloth":
        return render_sloth()
    if format == "openslo":
        return render_openslo()
    raise ValueError(f"unknown SLO format {format!r} (choose from {', '.join(FORMATS)})")


def slo_command(*, format: str, output: str | None) -> int:
    """Handler of `eddie-otel slo`; returns the exit status."""
    text = render(format)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"eddie-otel slo: error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {output}")
    return 0
