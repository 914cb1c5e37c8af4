"""Every metric of eddie-otel as data: the one place names, units, labels and buckets live.

The dashboard, the alert rules, the README table and the tests are generated from
this catalogue or checked against it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ADJUSTMENT_TYPES",
    "AGENT_ACTIVE_TASKS",
    "AGENT_CAPACITY",
    "AGENT_COST",
    "AGENT_LAST_SEEN",
    "AGENT_TASKS_EXECUTED",
    "AGENT_TOKENS",
    "CHUNK_EXECUTION",
    "CHUNK_FAILURE",
    "CHUNK_QUEUE_WAIT",
    "DOCKER_CPU_LIMIT",
    "DOCKER_CPU_THROTTLED",
    "DOCKER_CPU_USAGE",
    "DOCKER_ELASTIC_ADJUSTMENT",
    "DOCKER_MEMORY_LIMIT",
    "DOCKER_MEMORY_USAGE",
    "DOCKER_OOM_KILLS",
    "DURATION_BUCKETS",
    "EVENTS",
    "FALLBACK_CHUNK_SECONDS",
    "FALLBACK_COST",
    "FALLBACK_DEPTH_EXCEEDED",
    "FALLBACK_OUTCOMES",
    "LABEL_VALUES_CAPPED",
    "MERGE_CHUNKS_COMBINED",
    "MERGE_DEDUPLICATION",
    "METRICS",
    "QUEUE_WAIT_BUCKETS",
    "SELF_METRICS",
    "SERIES_OVERFLOW",
    "TASK_EXECUTION",
    "TASK_FAILURE",
    "TASK_FALLBACK",
    "TASK_SPLIT",
    "TASK_SPLIT_CHUNKS",
    "TASK_SUCCESS",
    "TASK_TIMEOUT",
    "TASK_TIMEOUT_RECOMMENDED",
    "TIMEOUT_EVENTS",
    "TOKEN_TYPES",
    "Kind",
    "Metric",
    "by_prometheus_name",
]


class Kind(str, enum.Enum):
    """The Prometheus type a metric is exposed as."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


# Seconds, from tens of milliseconds to half an hour of agent work. 60 s is a
# boundary on purpose: the p99 target is "under a minute", and a boundary there
# makes `histogram_quantile(0.99, ...) < 60` exact rather than interpolated.
DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1200.0,
    1800.0,
)

# The values of the `type` label of docker_elastic_adjustment_total.
ADJUSTMENT_TYPES: tuple[str, ...] = ("cpu_up", "cpu_down", "memory_up", "memory_down")

# Seconds a chunk waits between the split that created it and its start: from a millisecond (a
# free agent at once) to half an hour (a saturated fleet), with the duration buckets' boundaries.
QUEUE_WAIT_BUCKETS: tuple[float, ...] = (0.001, 0.005, *DURATION_BUCKETS)

# The values of the `outcome` label of task_fallback_total: a split task that succeeded, or not.
FALLBACK_OUTCOMES: tuple[str, ...] = ("rescued", "failed")
# The values of the `type` label of agent_tokens_total.
TOKEN_TYPES: tuple[str, ...] = ("input", "output")


@dataclass(frozen=True)
class Metric:
    """One metric: its Prometheus and OpenTelemetry identities and its shape."""

    prometheus_name: str
    otel_name: str
    kind: Kind
    unit: str
    labels: tuple[str, ...]
    description: str
    buckets: tuple[float, ...] | None = None
    # A gauge that counts what is in progress (+1 at a start, -1 at the end): an up-down counter
    # in OpenTelemetry, and a series the TTL keeps while it is not zero.
    up_down: bool = False

    @property
    def key(self) -> str:
        """The short name used in summaries: the Prometheus name without `_total`."""
        return self.prometheus_name.removesuffix("_total")


TASK_SPLIT = Metric(
    "task_split_total",
    "task.split",
    Kind.COUNTER,
    "{split}",
    ("agent",),
    "Tasks or chunks split into chunks after a timeout (fallback).",
)

TASK_SPLIT_CHUNKS = Metric(
    "task_split_chunks_total",
    "task.split.chunks",
    Kind.COUNTER,
    "{chunk}",
    ("agent",),
    "Chunks created by splits.",
)

TIMEOUT_EVENTS = Metric(
    "timeout_events_total",
    "timeout.events",
    Kind.COUNTER,
    "{timeout}",
    ("agent", "stage", "reason"),
    "Tasks or chunks that timed out.",
)

FALLBACK_DEPTH_EXCEEDED = Metric(
    "fallback_depth_exceeded_total",
    "fallback.depth_exceeded",
    Kind.COUNTER,
    "{split}",
    ("agent",),
    "Splits attempted deeper than the maximum fallback depth.",
)

TASK_EXECUTION = Metric(
    "task_execution_seconds",
    "task.execution",
    Kind.HISTOGRAM,
    "s",
    ("stage",),
    "Duration of finished tasks, successful or not.",
    DURATION_BUCKETS,
)

CHUNK_EXECUTION = Metric(
    "chunk_execution_seconds",
    "chunk.execution",
    Kind.HISTOGRAM,
    "s",
    ("agent",),
    "Duration of finished chunks.",
    DURATION_BUCKETS,
)

TASK_SUCCESS = Metric(
    "task_success_total",
    "task.success",
    Kind.COUNTER,
    "{task}",
    ("stage",),
    "Tasks that succeeded.",
)

TASK_FAILURE = Metric(
    "task_failure_total",
    "task.failure",
    Kind.COUNTER,
    "{task}",
    ("stage", "reason"),
    "Tasks that failed; reason is the exception class name or the given reason.",
)

AGENT_ACTIVE_TASKS = Metric(
    "agent_active_tasks",
    "agent.active_tasks",
    Kind.GAUGE,
    "{task}",
    ("agent",),
    "Tasks and chunks running on an agent now.",
    up_down=True,
)

AGENT_TASKS_EXECUTED = Metric(
    "agent_tasks_executed_total",
    "agent.tasks_executed",
    Kind.COUNTER,
    "{task}",
    ("agent",),
    "Tasks and chunks finished on an agent.",
)

DOCKER_CPU_LIMIT = Metric(
    "docker_container_cpu_limit",
    "docker.container.cpu_limit",
    Kind.GAUGE,
    "{millicore}",
    ("container",),
    "CPU limit of an agent container, in millicores.",
)

DOCKER_MEMORY_LIMIT = Metric(
    "docker_container_memory_limit_bytes",
    "docker.container.memory_limit",
    Kind.GAUGE,
    "By",
    ("container",),
    "Memory limit of an agent container, in bytes.",
)

DOCKER_ELASTIC_ADJUSTMENT = Metric(
    "docker_elastic_adjustment_total",
    "docker.elastic_adjustment",
    Kind.COUNTER,
    "{adjustment}",
    ("container", "type"),
    "Elastic adjustments of container limits; type is cpu_up, cpu_down, memory_up or memory_down.",
)

MERGE_DEDUPLICATION = Metric(
    "merge_deduplication_total",
    "merge.deduplication",
    Kind.COUNTER,
    "{result}",
    (),
    "Duplicate chunk results removed when merging.",
)

MERGE_CHUNKS_COMBINED = Metric(
    "merge_chunks_combined_total",
    "merge.chunks_combined",
    Kind.COUNTER,
    "{chunk}",
    (),
    "Chunk results combined when merging.",
)

CHUNK_FAILURE = Metric(
    "chunk_failure_total",
    "chunk.failure",
    Kind.COUNTER,
    "{chunk}",
    ("agent", "reason"),
    "Chunks that failed; reason is the exception class name or the given reason.",
)

DOCKER_CPU_USAGE = Metric(
    "docker_container_cpu_usage_seconds_total",
    "docker.container.cpu.usage",
    Kind.COUNTER,
    "s",
    ("container",),
    "CPU time used by an agent container, from the engine's cumulative count.",
)

DOCKER_CPU_THROTTLED = Metric(
    "docker_container_cpu_throttled_seconds_total",
    "docker.container.cpu.throttled",
    Kind.COUNTER,
    "s",
    ("container",),
    "Time an agent container was held back by its CPU limit (throttled).",
)

DOCKER_MEMORY_USAGE = Metric(
    "docker_container_memory_usage_bytes",
    "docker.container.memory.usage",
    Kind.GAUGE,
    "By",
    ("container",),
    "Memory an agent container uses as docker stats shows it: usage less inactive file pages.",
)

DOCKER_OOM_KILLS = Metric(
    "docker_container_oom_kills_total",
    "docker.container.oom_kills",
    Kind.COUNTER,
    "{kill}",
    ("container",),
    "Processes of an agent container killed for exceeding its memory limit (the engine's oom events).",
)

TASK_FALLBACK = Metric(
    "task_fallback_total",
    "task.fallback",
    Kind.COUNTER,
    "{task}",
    ("stage", "outcome"),
    "Tasks split at least once that finished; outcome is rescued (succeeded) or failed.",
)

FALLBACK_CHUNK_SECONDS = Metric(
    "fallback_chunk_seconds_total",
    "fallback.chunk",
    Kind.COUNTER,
    "s",
    ("stage",),
    "Seconds spent in chunks created by splits of tasks of a stage.",
)

FALLBACK_COST = Metric(
    "fallback_cost_usd_total",
    "fallback.cost.usd",
    Kind.COUNTER,
    "{USD}",
    ("stage",),
    "Model cost, in US dollars, of usage recorded inside chunks created by splits of tasks of a stage.",
)

CHUNK_QUEUE_WAIT = Metric(
    "chunk_queue_wait_seconds",
    "chunk.queue_wait",
    Kind.HISTOGRAM,
    "s",
    ("agent",),
    "Seconds from the split that created a chunk to the chunk's start.",
    QUEUE_WAIT_BUCKETS,
)

AGENT_CAPACITY = Metric(
    "agent_capacity",
    "agent.capacity",
    Kind.GAUGE,
    "{task}",
    ("agent",),
    "Tasks and chunks an agent says it can run at once.",
)

AGENT_LAST_SEEN = Metric(
    "agent_last_seen_timestamp_seconds",
    "agent.last_seen_timestamp",
    Kind.GAUGE,
    "s",
    ("agent",),
    "When anything was last recorded for an agent, in Unix seconds (to within 10 s).",
)

AGENT_TOKENS = Metric(
    "agent_tokens_total",
    "agent.tokens",
    Kind.COUNTER,
    "{token}",
    ("agent", "model", "type"),
    "Model tokens used by an agent; type is input or output.",
)

AGENT_COST = Metric(
    "agent_cost_usd_total",
    "agent.cost.usd",
    Kind.COUNTER,
    "{USD}",
    ("agent", "model"),
    "Model cost of an agent's usage in US dollars, given or priced from EDDIE_OTEL_PRICES_FILE.",
)

TASK_TIMEOUT = Metric(
    "task_timeout_seconds",
    "task.timeout",
    Kind.GAUGE,
    "s",
    ("stage",),
    "The timeout tasks of a stage run with, as the system says (eddie_otel.set_timeout).",
)

TASK_TIMEOUT_RECOMMENDED = Metric(
    "task_timeout_recommended_seconds",
    "task.timeout.recommended",
    Kind.GAUGE,
    "s",
    ("stage",),
    "The timeout this process recommends for a stage, from its recent successful task durations.",
)

METRICS: tuple[Metric, ...] = (
    TASK_SPLIT,
    TASK_SPLIT_CHUNKS,
    TIMEOUT_EVENTS,
    FALLBACK_DEPTH_EXCEEDED,
    TASK_EXECUTION,
    CHUNK_EXECUTION,
    TASK_SUCCESS,
    TASK_FAILURE,
    AGENT_ACTIVE_TASKS,
    AGENT_TASKS_EXECUTED,
    DOCKER_CPU_LIMIT,
    DOCKER_MEMORY_LIMIT,
    DOCKER_ELASTIC_ADJUSTMENT,
    DOCKER_CPU_USAGE,
    DOCKER_CPU_THROTTLED,
    DOCKER_MEMORY_USAGE,
    DOCKER_OOM_KILLS,
    MERGE_DEDUPLICATION,
    MERGE_CHUNKS_COMBINED,
    CHUNK_FAILURE,
    TASK_FALLBACK,
    FALLBACK_CHUNK_SECONDS,
    FALLBACK_COST,
    CHUNK_QUEUE_WAIT,
    AGENT_CAPACITY,
    AGENT_LAST_SEEN,
    AGENT_TOKENS,
    AGENT_COST,
    TASK_TIMEOUT,
    TASK_TIMEOUT_RECOMMENDED,
)

_BY_PROMETHEUS_NAME = {metric.prometheus_name: metric for metric in METRICS}


def by_prometheus_name(name: str) -> Metric:
    """The catalogue entry whose Prometheus name is `name`; KeyError when there is none."""
    return _BY_PROMETHEUS_NAME[name]


# Metrics about eddie-otel itself, exported beside the catalogue so operators can
# see when label values are being folded into `other` or webhook events rejected.
LABEL_VALUES_CAPPED = Metric(
    "eddie_otel_label_values_capped_total",
    "eddie_otel.label_values_capped",
    Kind.COUNTER,
    "{value}",
    ("label",),
    "Label values recorded as `other` because their label reached its cap of distinct values.",
)

SERIES_OVERFLOW = Metric(
    "eddie_otel_series_overflow_total",
    "eddie_otel.series_overflow",
    Kind.COUNTER,
    "{series}",
    ("metric",),
    "New label combinations recorded into a metric's overflow series (every label `other`) "
    "because the metric reached its series budget.",
)

EVENTS = Metric(
    "eddie_otel_events_total",
    "eddie_otel.events",
    Kind.COUNTER,
    "{event}",
    ("type", "outcome"),
    "Webhook events by type and outcome (accepted or rejected).",
)

SELF_METRICS: tuple[Metric, ...] = (
    LABEL_VALUES_CAPPED,
    SERIES_OVERFLOW,
    EVENTS,
)
