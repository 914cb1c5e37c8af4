"""The Prometheus alert rules, generated from the catalogue with the thresholds of `thresholds`.

`render_rules()` is the rule file committed as dashboards/prometheus-alerts.yml;
`python -m eddie_otel.ops.generate` rewrites it and a test checks it is current.
"""

from __future__ import annotations

from typing import Any

from eddie_otel.catalogue import DOCKER_MEMORY_LIMIT, DOCKER_MEMORY_USAGE, DOCKER_OOM_KILLS
from eddie_otel.ops import anomaly, promql, recommend, slo, yamlfile
from eddie_otel.ops.links import Links
from eddie_otel.ops.rule import Recording, Rule
from eddie_otel.ops.thresholds import THRESHOLDS, Thresholds

__all__ = [
    "GROUP",
    "JOB",
    "THRESHOLDS",
    "Recording",
    "Rule",
    "Thresholds",
    "all_rules",
    "render_rules",
    "rule_annotations",
    "rules",
]

GROUP = "eddie-distributed-fallback"
# The scrape job of dashboards/prometheus.yml; the endpoint-down alert watches its `up` series.
JOB = "eddie"


def _spoken(duration: str) -> str:
    # "5m" reads as "5 minutes" in an annotation; only the units the thresholds use.
    units = {"s": "second", "m": "minute", "h": "hour"}
    amount, unit = int(duration[:-1]), units[duration[-1]]
    return f"{amount} {unit}{'' if amount == 1 else 's'}"


def _new_series(metric_name: str, window: str, by: tuple[str, ...]) -> str:
    # A counter's series appears with its first increment, so increase() (which
    # needs two samples) never sees that first event; a series absent `window`
    # ago has had events since. Prometheus restarts make old series look new for
    # one window: a false alarm is preferable to a missed violation.
    return promql.aggregate("sum", f"{metric_name} unless {metric_name} offset {window}", by)


def rules(thresholds: Thresholds = THRESHOLDS) -> list[Rule]:
    """The threshold alerting rules of the group `eddie-distributed-fallback`, in rule-file order."""
    t = thresholds
    window = t.window
    span = _spoken(window)
    depth = promql.FALLBACK_DEPTH_EXCEEDED
    # Per scrape job, so that the job's EddieMetricsEndpointDown inhibits them (dashboards/alertmanager.yml).
    by = slo.BY
    by_agent = (*by, "agent")
    return [
        Rule(
            alert="EddieHighTimeoutEvents",
            expr=f"{promql.sum_increase(promql.TIMEOUT_EVENTS, window, by)} > {t.timeouts}",
            for_=t.timeouts_for,
            severity="warning",
            summary=f"More than {t.timeouts} timeouts in {span} across all agents",
            description=(
                "{{ $value | humanize }} tasks or chunks timed out in the last "
                f"{span} (threshold {t.timeouts}). The dashboard's timeout panel shows which agent and stage."
            ),
            panel="Timeout events by agent and stage",
        ),
        Rule(
            alert="EddieFallbackDepthExceeded",
            expr=(
                f"{promql.sum_increase(depth, window, by_agent)} > 0"
                f" or {_new_series(depth.prometheus_name, window, by_agent)} > 0"
            ),
            for_=t.depth_for,
            severity="critical",
            summary="Agent {{ $labels.agent }} tried to split deeper than the maximum fallback depth",
            description=(
                "Agent {{ $labels.agent }} attempted splits deeper than max_fallback_depth in the last "
                f"{_spoken(window)}: those tasks or chunks could not be split again. "
                "Raise EDDIE_OTEL_MAX_FALLBACK_DEPTH or make the chunks smaller."
            ),
            panel="Fallback depth violations by agent",
        ),
        Rule(
            alert="EddieHighFailureRate",
            expr=f"{promql.failure_ratio(window, by)} > {t.failure_ratio}",
            for_=t.failure_for,
            severity="warning",
            summary=f"More than {t.failure_ratio:.0%} of tasks failed over {span}",
            description=(
                "{{ $value | humanizePercentage }} of finished tasks failed over the last "
                f"{span} (threshold {t.failure_ratio:.0%}): failures / (successes + failures). "
                "task_failure_total's reason label says why."
            ),
            panel="Task successes and failures by stage",
        ),
        Rule(
            alert="EddieMetricsEndpointDown",
            expr=f'up{{job="{JOB}"}} == 0',
            for_=t.endpoint_down_for,
            severity="critical",
            summary="The eddie-otel metrics endpoint {{ $labels.instance }} is down",
            description=(
                "Prometheus could not scrape /metrics/prometheus on {{ $labels.instance }} (job {{ $labels.job }}) "
                f"for {_spoken(t.endpoint_down_for)}: no eddie metric from it is recorded "
                "and the other alerts cannot see it. "
                "Run `eddie-otel doctor`."
            ),
            panel="Task successes and failures by stage",
        ),
        Rule(
            alert="EddieLatencyP99High",
            expr=f"{promql.quantile(0.99, promql.TASK_EXECUTION, window, by)} > {t.latency_p99_seconds:g}",
            for_=t.latency_for,
            severity="warning",
            summary=f"Task latency p99 above {t.latency_p99_seconds:g} s",
            description=(
                "The 99th percentile of task execution time over the last "
                f"{span} is {{{{ $value | humanizeDuration }}}} (target under {t.latency_p99_seconds:g} s)."
            ),
            panel="Task execution time by stage",
        ),
        Rule(
            alert="EddieAgentImbalance",
            expr=(
                f"{promql.agent_balance(window, by)} > {t.agent_balance:g}"
                # With a single agent the ratio is 1 anyway; stated so the intent is plain.
                f" and {promql.active_agent_count(window, by)} >= 2"
            ),
            for_=t.imbalance_for,
            severity="warning",
            summary=f"The busiest agent executes more than {t.agent_balance:g}× the least busy one",
            description=(
                "Over the last "
                f'{span} the busiest agent finished {{{{ $value | printf "%.1f" }}}}× as many tasks and chunks '
                f"as the least busy active one (target under {t.agent_balance:g}×). Check agent_active_tasks per agent."
            ),
            panel="Agent balance",
        ),
        Rule(
            alert="EddieLowMergeEfficiency",
            expr=f"{promql.merge_efficiency(t.merge_window, by)} < {t.merge_efficiency}",
            for_=t.merge_for,
            severity="warning",
            summary=f"Merge efficiency below {t.merge_efficiency:.0%}",
            description=(
                "Only {{ $value | humanizePercentage }} of the chunk results merged over the last "
                f"{_spoken(t.merge_window)} were new (target above {t.merge_efficiency:.0%}): chunks overlap, "
                "so split work is done twice."
            ),
            panel="Merge efficiency",
        ),
        *_container_rules(t),
        *_agent_rules(t),
    ]


def _agent_rules(t: Thresholds) -> list[Rule]:
    """The alerts on what agents say about themselves: running near their capacity, and gone quiet while busy."""
    by_agent = (*slo.BY, "agent")
    seconds = t.agent_silent_seconds
    silence = _spoken(f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s")
    active = promql.aggregate("sum", promql.AGENT_ACTIVE_TASKS.prometheus_name, by_agent)
    return [
        Rule(
            alert="EddieAgentSaturated",
            # An agent that never said its capacity has no capacity series, so no saturation: it never fires.
            expr=f"{promql.saturation(by_agent)} > {t.agent_saturation:g}",
            for_=t.agent_saturation_for,
            severity="warning",
            summary=f"Agent {{{{ $labels.agent }}}} runs above {t.agent_saturation:.0%} of its capacity",
            description=(
                "Agent {{ $labels.agent }} has run {{ $value | humanizePercentage }} of the tasks and chunks it "
                f"says it can run at once (agent_capacity) for {_spoken(t.agent_saturation_for)}: chunks created "
                "by splits queue behind its work. Add agents or capacity, or send it less work."
            ),
            panel="Saturation by agent",
        ),
        Rule(
            alert="EddieAgentSilent",
            # A forgotten agent (forget_agent, a withdrawn webhook agent) has no series left: it stops firing.
            expr=(f"{promql.seconds_since_seen(by_agent)} > {t.agent_silent_seconds} and {active} > 0"),
            for_=t.agent_silent_for,
            severity="warning",
            summary=f"Agent {{{{ $labels.agent }}}} has running tasks but has not been seen for {silence}",
            description=(
                "Nothing has been recorded for agent {{ $labels.agent }} (no heartbeat, no finished task or chunk) "
                "for {{ $value | humanizeDuration }} while it has tasks running: it is hung or gone, and its tasks "
                "are lost until their timeouts fire. Check the agent; forget it (forget_agent) if it is gone."
            ),
            panel="Time since last seen by agent",
        ),
    ]


def _container_rules(t: Thresholds) -> list[Rule]:
    """The alerts on what `eddie-otel docker-watch` records: memory near the limit, and OOM kills."""
    window = t.window
    by_container = (*slo.BY, "container")
    usage = promql.aggregate("max", DOCKER_MEMORY_USAGE.prometheus_name, by_container)
    limit = promql.aggregate("max", DOCKER_MEMORY_LIMIT.prometheus_name, by_container)
    kills = promql.sum_increase(DOCKER_OOM_KILLS, window, by_container)
    return [
        Rule(
            alert="EddieContainerMemoryNearLimit",
            # A container without a memory limit has no limit series, so no ratio: it never fires.
            expr=f"{usage} / {limit} > {t.container_memory_ratio:g}",
            for_=t.container_memory_for,
            severity="warning",
            summary=f"Container {{{{ $labels.container }}}} uses more than {t.container_memory_ratio:.0%} "
            "of its memory limit",
            description=(
                "Container {{ $labels.container }} has used {{ $value | humanizePercentage }} of its memory limit "
                f"(as docker stats shows it: usage less inactive file pages) for {_spoken(t.container_memory_for)}. "
                "The next peak is an OOM kill: raise its memory limit or make its chunks smaller."
            ),
            panel="Container memory usage against limit",
        ),
        Rule(
            alert="EddieContainerOOMKilled",
            expr=(f"{kills} > 0 or {_new_series(DOCKER_OOM_KILLS.prometheus_name, window, by_container)} > 0"),
            for_=t.oom_for,
            severity="warning",
            summary="A process of container {{ $labels.container }} was killed for exceeding its memory limit",
            description=(
                "The kernel killed a process of container {{ $labels.container }} for exceeding its memory limit "
                f"(OOM kills in the last {_spoken(window)}: {{{{ $value | humanize }}}}): the work it ran is lost. "
                "Raise the container's memory limit or give its agent smaller chunks."
            ),
            panel="Container OOM kills",
        ),
    ]


def all_rules(thresholds: Thresholds = THRESHOLDS) -> list[Rule]:
    """The alerting rules of the group `eddie-distributed-fallback`: threshold, SLO burn-rate and timeout alerts.

    Not EddieAnomaly (group `eddie-anomaly`): it reads a week of its own recordings, which Grafana-managed
    rules cannot write out in full.
    """
    return [*rules(thresholds), *slo.burn_rate_rules(), *recommend.alert_rules()]


def rule_annotations(rule: Rule, links: Links) -> dict[str, str]:
    """The annotations of `rule`: summary, description, and links to its runbook section and dashboard panel."""
    return {
        "summary": rule.summary,
        "description": rule.description,
        "runbook_url": links.runbook(rule.alert),
        "dashboard_url": links.dashboard(rule.panel),
    }


def _group_rules(recordings: list[Recording], alerting: list[Rule], links: Links) -> list[dict[str, Any]]:
    # Rules of a group are evaluated in order: the alerts read recordings made in the same evaluation.
    return [{"record": r.record, "expr": r.expr} for r in recordings] + [
        {
            "alert": rule.alert,
            "expr": rule.expr,
            "for": rule.for_,
            "labels": {"severity": rule.severity, **dict(rule.labels)},
            "annotations": rule_annotations(rule, links),
        }
        for rule in alerting
    ]


def render_rules(thresholds: Thresholds = THRESHOLDS, links: Links | None = None) -> str:
    """The Prometheus rule file (YAML): per group, its recording rules, then its alerts; deterministic.

    Two groups: `eddie-distributed-fallback` at the global evaluation interval, and `eddie-anomaly`
    every 5 minutes (eddie_otel/ops/anomaly.py).
    """
    links = links or Links()
    main = _group_rules([*slo.recording_rules(), *recommend.recording_rules()], all_rules(thresholds), links)
    anomalies = _group_rules(anomaly.recording_rules(), anomaly.alert_rules(), links)
    document = {
        "groups": [
            {"name": GROUP, "rules": main},
            {"name": anomaly.GROUP, "interval": anomaly.INTERVAL, "rules": anomalies},
        ]
    }
    header = (
        "# Prometheus alerting rules for eddie-otel.\n"
        "# Generated from eddie_otel/ops/alerts.py by `python -m eddie_otel.ops.generate`: edit that, not this.\n"
    )
    return yamlfile.dump(document, header)
