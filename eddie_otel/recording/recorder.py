"""The Recorder: every record call and decorator of one runtime, and what they count.

Each public `record_*` method checks its arguments (a ValueError naming the bad one,
and nothing recorded), then calls the matching trusted method (`split`, `timeout`,
`task_finished`, ...), which takes values already valid: the webhook events, which
pydantic has validated, call those directly. Every change to a series goes through
the store; every finished task or chunk through the one outcome body (`Site.end`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from eddie_otel import fallback
from eddie_otel import tracing as traces
from eddie_otel.catalogue import (
    AGENT_CAPACITY,
    AGENT_COST,
    AGENT_LAST_SEEN,
    AGENT_TOKENS,
    DOCKER_CPU_LIMIT,
    DOCKER_CPU_THROTTLED,
    DOCKER_CPU_USAGE,
    DOCKER_ELASTIC_ADJUSTMENT,
    DOCKER_MEMORY_LIMIT,
    DOCKER_MEMORY_USAGE,
    DOCKER_OOM_KILLS,
    EVENTS,
    FALLBACK_COST,
    FALLBACK_DEPTH_EXCEEDED,
    MERGE_CHUNKS_COMBINED,
    MERGE_DEDUPLICATION,
    TASK_SPLIT,
    TASK_SPLIT_CHUNKS,
    TIMEOUT_EVENTS,
)
from eddie_otel.history import History
from eddie_otel.prices import Prices, load
from eddie_otel.recording import checks
from eddie_otel.recording.decorators import Carrier, Depth, Label, QueuedSince, decorator
from eddie_otel.recording.outcome import Site, given_reason
from eddie_otel.telemetry import Telemetry

if TYPE_CHECKING:
    from eddie_otel.config import Settings
    from eddie_otel.store import Exemplar

__all__ = ["Label", "Recorder"]

F = TypeVar("F", bound=Callable[..., Any])
# Sites kept per recorder before the cache starts over: label values are capped, so
# only callable labels that keep changing could grow it.
MAX_SITES = 4096
# The span attributes of a task's model usage (the OpenTelemetry GenAI conventions).
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
# Guards the usage sums a task's span carries (chunks in other threads add to them).
_USAGE_LOCK = threading.Lock()


class Recorder:
    """Records into one runtime's store and history; `eddie_otel.record_*` use the configured runtime's."""

    def __init__(
        self, settings: Settings, telemetry: Telemetry, history: History, tracing: traces.Tracing | None = None
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.history = history
        # None when there are no spans (no TracerProvider, OTEL_TRACES_EXPORTER=none).
        self.tracing = tracing
        self.enabled = telemetry.enabled
        self._store = telemetry.store
        self._bound = telemetry.label_cap.bound
        self._sites: dict[tuple[bool, str, str | None], Site] = {}
        # EDDIE_OTEL_PRICES_FILE, read (and checked) when the settings were loaded.
        self.prices = load(settings.prices_file) if settings.prices_file else Prices()

    # -------------------------------------------------------------- sites

    def site(self, is_task: bool, stage: str, agent: str | None) -> Site:
        """The site of a task (or chunk) with these label values, which must be valid and capped."""
        key = (is_task, stage, agent)
        site = self._sites.get(key)
        if site is None:
            if len(self._sites) >= MAX_SITES:
                self._retire(lambda site: True)
            telemetry = self.telemetry
            site = self._sites[key] = Site(
                self,
                store=self._store,
                history=self.history,
                advance=self.advance,
                bound=self._bound,
                sdk_histograms=telemetry.histograms,
                tracing=self.tracing,
                is_task=is_task,
                stage=stage,
                agent=agent,
            )
        return site

    def close(self) -> None:
        """Its runtime is closing: retire every site, so that decorators resolve theirs anew."""
        self._retire(lambda site: True)

    def _retire(self, which: Callable[[Site], bool]) -> None:
        # Decorators keep their site: a retired one makes them ask for a fresh one.
        for key, site in list(self._sites.items()):
            if which(site):
                site.retire()
                # Another thread may be retiring the same site: pop, never del.
                self._sites.pop(key, None)

    def bound(self, label: str, value: str) -> str:
        """`value` for `label`, or `other` past the label's cap of distinct values."""
        return self._bound(label, value)

    def _tick(self) -> float:
        history = self.history
        now = history.clock()
        if now >= history.next_tick:
            self.advance(now)
        return now

    def advance(self, now: float) -> None:
        """A reading of the history clock: at each new 10-second bucket, a history snapshot, and the
        store's coarse clock moved on and its expired gauge series dropped (EDDIE_OTEL_SERIES_TTL_SECONDS)."""
        if self.history.tick(now):
            store = self._store
            store.tick(now)
            ttl = self.settings.series_ttl_seconds
            if ttl and store.expire(ttl):
                # Sites hold cells; those of dropped series are made anew when next used.
                self._retire(lambda site: True)

    # -------------------------------------------------------------- trusted: values already valid

    def split(self, agent: str, chunks: int, depth: int) -> bool:
        """Count a split of `chunks` chunks at `depth`; False (and a refused split counted) past the maximum depth."""
        allowed = depth <= self.settings.max_fallback_depth
        if not self.enabled:
            return allowed
        self._tick()
        store = self._store
        key = (self._bound("agent", agent),)
        if self.tracing is not None:
            attributes = {traces.AGENT: agent, "eddie.split.chunks": chunks, traces.DEPTH: depth}
            if allowed:
                traces.event("eddie.split", attributes)
            else:
                attributes["eddie.fallback.max_depth"] = self.settings.max_fallback_depth
                traces.event("eddie.fallback_depth_exceeded", attributes)
        seen = store.of(AGENT_LAST_SEEN).cell(key)
        if not allowed:
            store.add(store.of(FALLBACK_DEPTH_EXCEEDED).cell(key), 1, seen)
            return False
        # The task whose context this is (if any) was split: its end counts in task_fallback_total.
        fallback.mark_split()
        store.add_pair(store.of(TASK_SPLIT).cell(key), 1, store.of(TASK_SPLIT_CHUNKS).cell(key), chunks, seen)
        return True

    def timeout(self, agent: str, stage: str, reason: str) -> None:
        """Count a timeout of a task or chunk of `stage` on `agent`."""
        if not self.enabled:
            return
        self._tick()
        if self.tracing is not None:
            traces.event("eddie.timeout", {traces.AGENT: agent, traces.STAGE: stage, "eddie.timeout.reason": reason})
        bound = self._bound("agent", agent)
        key = (bound, self._bound("stage", stage), self._bound("reason", reason))
        store = self._store
        store.add(store.of(TIMEOUT_EVENTS).cell(key), 1, store.of(AGENT_LAST_SEEN).cell((bound,)))

    def task_finished(
        self, stage: str, seconds: float, success: bool, reason: str | None, agent: str | None, split: bool = False
    ) -> None:
        """A task measured elsewhere finished: what @task records for one call (agent load but no active count).

        `split`: the task was split at least once (task_fallback_total counts it, rescued or failed).
        """
        if not self.enabled:
            return
        now = self.history.clock()
        site = self.site(True, self._bound("stage", stage), None if agent is None else self._bound("agent", agent))
        failure, timed_out = (None, False) if success else given_reason("error" if reason is None else reason)
        site.end(seconds, failure, timed_out, now, self._exemplar(seconds), None, None, split)

    def chunk_finished(
        self,
        agent: str,
        seconds: float,
        success: bool,
        reason: str | None = None,
        queued_seconds: float | None = None,
    ) -> None:
        """A chunk measured elsewhere finished on `agent`: what @chunk records for one call.

        `queued_seconds`: how long it waited between the split that created it and its start. Recorded
        in the context of a split task (or of a fallback chunk), its seconds are fallback work too.
        """
        if not self.enabled:
            return
        now = self.history.clock()
        site = self.site(False, "chunk", self._bound("agent", agent))
        failure, timed_out = (None, False) if success else given_reason("error" if reason is None else reason)
        if queued_seconds is not None:
            site.waited(queued_seconds)
        stage = _fallback_stage()
        seconds_cell = None if stage is None else site.fallback_seconds(stage)
        site.end(seconds, failure, timed_out, now, self._exemplar(seconds), None, None, False, seconds_cell)

    def capacity(self, agent: str, slots: int | None) -> None:
        """`agent` is alive, and runs at most `slots` tasks and chunks at once (None: capacity unchanged)."""
        if not self.enabled:
            return
        self._tick()
        store = self._store
        key = (self._bound("agent", agent),)
        gauge = None if slots is None else store.of(AGENT_CAPACITY).cell(key)
        store.seen(store.of(AGENT_LAST_SEEN).cell(key), gauge, 0.0 if slots is None else slots)

    def usage(self, agent: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float | None) -> None:
        """Model usage of `agent`: tokens, and a cost (given, else priced from the price table; None: no cost)."""
        if not self.enabled:
            return
        self._tick()
        cost = cost_usd if cost_usd is not None else self.prices.cost(model, input_tokens, output_tokens)
        store = self._store
        bound_agent = self._bound("agent", agent)
        bound_model = self._bound("model", model)
        tokens = store.of(AGENT_TOKENS)
        cost_cell = fallback_cell = None
        if cost is not None:
            cost_cell = store.of(AGENT_COST).cell((bound_agent, bound_model))
            stage = fallback.chunk_stage()
            if stage is not None:
                fallback_cell = store.of(FALLBACK_COST).cell((self._bound("stage", stage),))
        store.usage(
            tokens.cell((bound_agent, bound_model, "input")),
            input_tokens,
            tokens.cell((bound_agent, bound_model, "output")),
            output_tokens,
            cost_cell,
            fallback_cell,
            0.0 if cost is None else cost,
            store.of(AGENT_LAST_SEEN).cell((bound_agent,)),
        )
        if self.tracing is not None:
            _on_task_span(input_tokens, output_tokens)

    def _exemplar(self, seconds: float) -> Exemplar | None:
        # Work measured elsewhere points at the span current when it is recorded (a webhook's span).
        tracing = self.tracing
        return None if tracing is None else traces.current_exemplar(seconds, tracing.exemplar_filter)

    def forget(self, label: str, value: str) -> None:
        """Drop every series whose `label` is `value`, and free its slot under the label's cap."""
        if label == "agent":
            self._retire(lambda site: site.agent == value)
        self._store.forget(label, value)
        self.telemetry.label_cap.forget(label, value)

    def merge(self, chunks_combined: int, duplicates_removed: int) -> None:
        """Count a merge of `chunks_combined` chunk results that removed `duplicates_removed` duplicates."""
        if not self.enabled:
            return
        self._tick()
        if self.tracing is not None:
            traces.event(
                "eddie.merge",
                {"eddie.merge.chunks_combined": chunks_combined, "eddie.merge.duplicates_removed": duplicates_removed},
            )
        store = self._store
        store.add_pair(
            store.of(MERGE_CHUNKS_COMBINED).cell(()),
            chunks_combined,
            store.of(MERGE_DEDUPLICATION).cell(()),
            duplicates_removed,
        )

    def allocation(self, container: str, cpu_millicores: int, memory_bytes: int, adjustment: str) -> None:
        """Set `container`'s limits; an `adjustment` other than "initial" is counted too."""
        if not self.enabled:
            return
        self._tick()
        store = self._store
        key = (self._bound("container", container),)
        counted = None
        if adjustment != checks.INITIAL:
            counted = store.of(DOCKER_ELASTIC_ADJUSTMENT).cell((*key, adjustment))
        store.set_pair(
            store.of(DOCKER_CPU_LIMIT).cell(key),
            cpu_millicores,
            store.of(DOCKER_MEMORY_LIMIT).cell(key),
            memory_bytes,
            counted,
        )

    def adjustment(self, container: str, type: str) -> None:
        """Count an elastic adjustment of `container`'s limits."""
        if not self.enabled:
            return
        self._tick()
        key = (self._bound("container", container), type)
        self._store.add(self._store.of(DOCKER_ELASTIC_ADJUSTMENT).cell(key))

    # What the Docker watcher records: `container` is a valid label value (bound here under its cap).

    def container_limits(
        self, container: str, cpu_millicores: float | None, memory_bytes: int | None, adjustments: Sequence[str]
    ) -> None:
        """Set (or, None: drop) `container`'s limit series, and count each of `adjustments` (cpu_up, ...)."""
        if not self.enabled:
            return
        self._tick()
        store = self._store
        key = (self._bound("container", container),)
        cpu = store.of(DOCKER_CPU_LIMIT)
        memory = store.of(DOCKER_MEMORY_LIMIT)
        if cpu_millicores is None:
            store.discard(cpu, key)
        else:
            store.set(cpu.cell(key), cpu_millicores)
        if memory_bytes is None:
            store.discard(memory, key)
        else:
            store.set(memory.cell(key), memory_bytes)
        for adjustment in adjustments:
            store.add(store.of(DOCKER_ELASTIC_ADJUSTMENT).cell((*key, adjustment)))

    def container_usage(self, container: str, cpu_seconds: float, throttled_seconds: float, memory_bytes: int) -> None:
        """A sample of `container`'s usage: the CPU counters raised to the engine's cumulative values, memory set."""
        if not self.enabled:
            return
        self._tick()
        store = self._store
        key = (self._bound("container", container),)
        store.raise_to(store.of(DOCKER_CPU_USAGE).cell(key), cpu_seconds)
        store.raise_to(store.of(DOCKER_CPU_THROTTLED).cell(key), throttled_seconds)
        store.set(store.of(DOCKER_MEMORY_USAGE).cell(key), memory_bytes)

    def container_seen(self, container: str) -> None:
        """A container is watched: its OOM-kill counter exists from now on, at 0 (a first kill is an increase)."""
        if self.enabled:
            self._store.of(DOCKER_OOM_KILLS).cell((self._bound("container", container),))

    def container_oom(self, container: str) -> None:
        """Count one OOM kill in `container`."""
        if not self.enabled:
            return
        self._tick()
        self._store.add(self._store.of(DOCKER_OOM_KILLS).cell((self._bound("container", container),)))

    def count_events(self, type_name: str, outcome: str, count: int) -> None:
        """Count `count` webhook events of `type_name` with `outcome` (accepted or rejected)."""
        store = self._store
        store.add(store.of(EVENTS).cell((type_name, outcome)), count)

    # -------------------------------------------------------------- the public record calls

    def record_split(self, agent: str, chunks: int, depth: int) -> bool:
        """Record that a task or chunk at fallback `depth` was split into `chunks` chunks.

        Returns False, and counts fallback_depth_exceeded_total instead, when `depth` is
        beyond the maximum fallback depth (EDDIE_OTEL_MAX_FALLBACK_DEPTH, default 3): the
        caller should not split.
        """
        checks.label("agent", agent)
        checks.count("chunks", chunks, 1, checks.MAX_CHUNKS)
        checks.count("depth", depth, 0, checks.MAX_DEPTH)
        return self.split(agent, chunks, depth)

    def record_timeout(self, agent: str, stage: str, reason: str = "timeout") -> None:
        """Record that a task or chunk of `stage` on `agent` timed out."""
        checks.label("agent", agent)
        checks.label("stage", stage)
        checks.label("reason", reason)
        self.timeout(agent, stage, reason)

    def record_merge(self, chunks_combined: int, duplicates_removed: int) -> None:
        """Record a merge of `chunks_combined` chunk results that removed `duplicates_removed` duplicates."""
        checks.count("chunks_combined", chunks_combined, 0, checks.MAX_CHUNKS_COMBINED)
        checks.count("duplicates_removed", duplicates_removed, 0, checks.MAX_CHUNKS_COMBINED)
        checks.merge_counts(chunks_combined, duplicates_removed)
        self.merge(chunks_combined, duplicates_removed)

    def record_docker_allocation(
        self, container: str, cpu_millicores: int, memory_bytes: int, adjustment: str = checks.INITIAL
    ) -> None:
        """Record the CPU (millicores) and memory (bytes) limits just set on `container`.

        `adjustment` is "initial" for a first allocation, or the elastic adjustment
        (cpu_up, cpu_down, memory_up, memory_down) that led to these limits, which is
        then counted too.
        """
        checks.label("container", container)
        checks.count("cpu_millicores", cpu_millicores, 1, checks.MAX_CPU_MILLICORES)
        checks.count("memory_bytes", memory_bytes, 1, checks.MAX_MEMORY_BYTES)
        checks.adjustment("adjustment", adjustment, initial=True)
        self.allocation(container, cpu_millicores, memory_bytes, adjustment)

    def record_elastic_adjustment(self, container: str, type: str) -> None:
        """Record an elastic adjustment of `container`'s limits: cpu_up, cpu_down, memory_up or memory_down."""
        checks.label("container", container)
        checks.adjustment("type", type, initial=False)
        self.adjustment(container, type)

    def record_task(
        self,
        stage: str,
        duration_seconds: float,
        success: bool = True,
        reason: str | None = None,
        agent: str | None = None,
        split: bool = False,
    ) -> None:
        """Record a finished task measured elsewhere: what @task records for one call.

        A failure's `reason` defaults to "error"; a reason of "timeout" or "TimeoutError"
        also counts a timeout event. A success's `reason` is left out (`success=ok, reason=why`
        reads naturally); a webhook, whose sender can omit it, is refused one. `split`: the task
        was split at least once (task_fallback_total counts it, rescued or failed).
        """
        checks.flag("success", success)
        checks.flag("split", split)
        checks.label("stage", stage)
        if not success:
            checks.label("reason", "error" if reason is None else reason)
        if agent is not None:
            checks.label("agent", agent)
        seconds = checks.seconds("duration_seconds", duration_seconds)
        self.task_finished(stage, seconds, success, None if success else reason, agent, split)

    def record_chunk(
        self,
        agent: str,
        duration_seconds: float,
        success: bool = True,
        reason: str | None = None,
        queued_seconds: float | None = None,
    ) -> None:
        """Record a finished chunk measured elsewhere: what @chunk records for one call.

        A failure's `reason` defaults to "error"; "timeout" (or "TimeoutError") also counts a timeout.
        A success's `reason` is left out, as for `record_task`. `queued_seconds`: how long the chunk
        waited between the split that created it and its start (chunk_queue_wait_seconds).
        """
        checks.flag("success", success)
        checks.label("agent", agent)
        if not success:
            checks.label("reason", "error" if reason is None else reason)
        seconds = checks.seconds("duration_seconds", duration_seconds)
        queued = None if queued_seconds is None else checks.seconds("queued_seconds", queued_seconds)
        self.chunk_finished(agent, seconds, success, None if success else reason, queued)

    def set_agent_capacity(self, agent: str, slots: int) -> None:
        """Record that `agent` can run `slots` tasks and chunks at once (agent_capacity; saturation = running / it)."""
        checks.label("agent", agent)
        checks.capacity("slots", slots)
        self.capacity(agent, slots)

    def record_usage(
        self, agent: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float | None = None
    ) -> None:
        """Record model usage by `agent`: tokens of `model`, and its cost in US dollars.

        Without `cost_usd`, the cost comes from the price table (EDDIE_OTEL_PRICES_FILE); a model it
        does not price records tokens only. Inside a task the tokens also go on the task's span;
        inside a chunk created by a split, the cost counts as fallback cost of the task's stage.
        """
        checks.usage(agent, model, input_tokens, output_tokens, cost_usd)
        cost = None if cost_usd is None else checks.cost("cost_usd", cost_usd)
        self.usage(agent, model, input_tokens, output_tokens, cost)

    def forget_agent(self, name: str) -> None:
        """Drop every series of agent `name` (it is gone for good) and free its slot under the agent cap."""
        checks.label("agent", name)
        self.forget("agent", name)

    def forget_container(self, name: str) -> None:
        """Drop every series of container `name` (it was removed) and free its slot under the container cap."""
        checks.label("container", name)
        self.forget("container", name)

    # -------------------------------------------------------------- decorators bound to this recorder

    def task(
        self, stage: Label = "default", agent: Label | None = None, *, carrier: Carrier | None = None
    ) -> Callable[[F], F]:
        """@task recording into this recorder's runtime, whatever is configured later."""
        return decorator(True, stage, agent, lambda: self, carrier=carrier)

    def chunk(
        self,
        agent: Label,
        stage: Label = "chunk",
        *,
        depth: Depth | None = None,
        carrier: Carrier | None = None,
        queued_since: QueuedSince | None = None,
    ) -> Callable[[F], F]:
        """@chunk recording into this recorder's runtime, whatever is configured later."""
        return decorator(False, stage, agent, lambda: self, depth=depth, carrier=carrier, queued_since=queued_since)


def _fallback_stage() -> str | None:
    """The stage whose fallback work the current context is: a fallback chunk's, or a split task's."""
    stage = fallback.chunk_stage()
    if stage is not None:
        return stage
    mark = fallback.task_mark()
    return mark.stage if mark is not None and mark.split else None


def _on_task_span(input_tokens: int, output_tokens: int) -> None:
    """Add a usage to the sums of tokens on the span of the task whose context this is (if traced)."""
    mark = fallback.task_mark()
    span = None if mark is None else getattr(mark, "span", None)
    if mark is None or span is None:
        return
    with _USAGE_LOCK:
        mark.input_tokens = total_input = getattr(mark, "input_tokens", 0) + input_tokens
        mark.output_tokens = total_output = getattr(mark, "output_tokens", 0) + output_tokens
    traces.usage(span, {INPUT_TOKENS: total_input, OUTPUT_TOKENS: total_output})
