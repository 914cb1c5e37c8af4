"""The one body that turns a finished task or chunk into counts, whoever records it.

A decorator, `record_task`/`record_chunk` and a webhook event all end here: a `Site`
holds the cells of one kind of call (task or chunk) with one set of label values,
and `Site.end(seconds, reason, timed_out)` records the duration, the agent's load,
success or failure, and a timeout. Failure reasons come from `reason_of` (an
exception) or `given_reason` (a caller's word), the one place that decides what a
timeout is.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from eddie_otel.catalogue import (
    AGENT_ACTIVE_TASKS,
    AGENT_LAST_SEEN,
    AGENT_TASKS_EXECUTED,
    CHUNK_EXECUTION,
    CHUNK_FAILURE,
    CHUNK_QUEUE_WAIT,
    FALLBACK_CHUNK_SECONDS,
    TASK_EXECUTION,
    TASK_FAILURE,
    TASK_FALLBACK,
    TASK_SUCCESS,
    TIMEOUT_EVENTS,
)
from eddie_otel.instruments import record
from eddie_otel.labels import LABEL_VALUE_RE
from eddie_otel.store import Cell, Counted, Exemplar, HistogramCell, Receipt, RunningCell, Tally
from eddie_otel.tracing import span_attributes, span_name

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram

    from eddie_otel.history import History
    from eddie_otel.store import Store
    from eddie_otel.tracing import Tracing

__all__ = ["TIMEOUT_REASONS", "UNKNOWN", "Site", "given_reason", "is_timeout", "reason_of"]

# The modules whose TimeoutError is not yet the builtin one on Python 3.10.
_TIMEOUT_MODULES = ("asyncio", "concurrent.futures") if sys.version_info < (3, 11) else ()


def is_timeout(error: BaseException) -> bool:
    """Whether `error` is a TimeoutError: the builtin, asyncio's or concurrent.futures' (one on Python 3.11+).

    The modules are looked up only where they are loaded: an error of a module never
    imported cannot exist, and importing asyncio would cost every process that records.
    """
    if isinstance(error, TimeoutError):
        return True
    for name in _TIMEOUT_MODULES:
        module = sys.modules.get(name)
        if module is not None and isinstance(error, module.TimeoutError):
            return True
    return False


# Reasons given by a caller that mean a timeout, and the one reason every timeout is recorded with.
TIMEOUT_REASONS = frozenset({"timeout", "TimeoutError"})
TIMEOUT = "timeout"
# The label value of what has no valid name of its own.
UNKNOWN = "unknown"


def reason_of(error: BaseException) -> tuple[str, bool]:
    """The failure reason of `error` (its class name, or "timeout" for any TimeoutError) and whether it is one."""
    if is_timeout(error):
        return TIMEOUT, True
    reason = type(error).__name__
    # A class name is an identifier, which may hold letters a label value may not.
    if LABEL_VALUE_RE.fullmatch(reason) is None:
        reason = UNKNOWN
    return reason, False


def given_reason(reason: str) -> tuple[str, bool]:
    """A caller's failure reason ("timeout" for either word of a timeout) and whether it is a timeout."""
    if reason in TIMEOUT_REASONS:
        return TIMEOUT, True
    return reason, False


class Site:
    """The cells of one kind of call (task or chunk) for one set of label values."""

    __slots__ = (
        "_bound",
        "_failures",
        "_fallback",
        "_queue_wait",
        "_sdk_queue_wait",
        "active",
        "advance",
        "agent",
        "executed",
        "histogram",
        "history",
        "is_task",
        "live",
        "recorder",
        "sample",
        "sdk_attributes",
        "sdk_histogram",
        "seen",
        "span_attributes",
        "span_name",
        "stage",
        "store",
        "successes",
        "tally",
        "tracing",
    )

    def __init__(
        self,
        owner: object,
        *,
        store: Store,
        history: History,
        advance: Callable[[float], None],
        bound: Callable[[str, str], str],
        sdk_histograms: Mapping[str, Histogram],
        tracing: Tracing | None,
        is_task: bool,
        stage: str,
        agent: str | None,
    ) -> None:
        # The recorder that made the site; None once the site's series are forgotten: whoever holds
        # it then asks its recorder for a new one.
        self.recorder: object | None = owner
        # False once retired: whoever holds the site resolves a fresh one (read on every decorated call).
        self.live = True
        self._bound = bound
        self.store = store
        self.history = history
        # What a new 10-second bucket of the history clock sets off (the recorder's `advance`).
        self.advance = advance
        self.is_task = is_task
        self.stage = stage
        self.agent = agent
        self.executed = store.of(AGENT_TASKS_EXECUTED).cell((agent,)) if agent is not None else None
        # The agent's last-seen gauge, stamped by every start and end of a call on it.
        self.seen = store.of(AGENT_LAST_SEEN).cell((agent,)) if agent is not None else None
        # A split task's task_fallback_total cells (rescued, failed), and a chunk's queue-wait series: on first use.
        self._fallback: tuple[Cell, Cell] | None = None
        self._queue_wait: HistogramCell | None = None
        self._sdk_queue_wait = sdk_histograms.get(CHUNK_QUEUE_WAIT.prometheus_name)
        # Created by `prepare()` (before a decorated call) or the first success: a task recorded
        # after the fact has no running count, and its success series appears with its first success.
        self.active: RunningCell | None = None
        # The cells a success counts into, and where a plain success is counted without the lock.
        self.tally: Tally | None = None
        self._failures: dict[tuple[str, bool], Counted] = {}
        metric, key = (TASK_EXECUTION, stage) if is_task else (CHUNK_EXECUTION, agent or UNKNOWN)
        # The same duration goes to OpenTelemetry readers through an SDK histogram, when there are any.
        self.sdk_histogram = sdk_histograms.get(metric.prometheus_name)
        self.sdk_attributes = dict(zip(metric.labels, (key,), strict=True))
        self.histogram = store.histogram(metric).cell((key,))
        self.sample = history.sample(stage) if is_task else None
        # Successful durations only: what the recommended timeout is computed from, when read.
        self.successes = history.successes(stage) if is_task else None
        # None when there are no spans: the decorators then skip everything about traces.
        self.tracing = tracing
        self.span_name = span_name(agent)
        self.span_attributes = span_attributes(stage, agent)

    def prepare(self) -> None:
        """Make the cells a decorated call counts from its start (the running count, the success)."""
        if self.agent is not None and self.active is None:
            self.active = self.store.of(AGENT_ACTIVE_TASKS).running((self.agent,))
            self.tally = None
        if self.tally is None:
            self._succeeded()

    def waited(self, seconds: float) -> None:
        """A chunk on this site's agent started `seconds` after the split that created it (chunk_queue_wait_seconds)."""
        cell = self._queue_wait
        if cell is None:
            cell = self._queue_wait = self.store.histogram(CHUNK_QUEUE_WAIT).cell((self.agent or UNKNOWN,))
        self.store.observe(cell, seconds, self.seen)
        if self._sdk_queue_wait is not None:
            record(self._sdk_queue_wait, seconds, {"agent": self.agent or UNKNOWN}, None)

    def retire(self) -> None:
        """The site's series were forgotten, or its runtime closed: it must not be used again."""
        self.live = False
        self.recorder = None

    def end(
        self,
        seconds: float,
        reason: str | None,
        timed_out: bool,
        now: float,
        exemplar: Exemplar | None = None,
        context: Context | None = None,
        receipt: Receipt | None = None,
        split: bool = False,
        fallback_seconds: Cell | None = None,
    ) -> None:
        """The call ended after `seconds`: a success when `reason` is None, else a failure (and maybe a timeout).

        `now` is the history clock's reading;
        `exemplar` is the sampled span the duration came from, kept by its histogram bucket;
        `context` is the call's span context, where the SDK histogram takes its own exemplar;
        `receipt` is a decorated call's record: it leaves the agent's running count, and `receipt.done`
        is set with the store's change (the call reads it when interrupted);
        `split`: a task that was split (task_fallback_total counts it, rescued or failed);
        `fallback_seconds`: a fallback chunk's fallback_chunk_seconds_total cell, which `seconds` go into.
        """
        history = self.history
        if now >= history.next_tick:
            self.advance(now)
        if reason is None and not split and fallback_seconds is None and exemplar is None:
            # The common end, a plain success: counted by joining the site's tally, without the lock.
            tally = self.tally or self._succeeded()
            self.store.succeed(tally, seconds, self.active if receipt is not None else None, receipt, self.seen)
        else:
            # A success series appears with the first success (or a decorated call's start), never with a failure.
            counted = (self.tally or self._succeeded()).counted if reason is None else self._failed(reason, timed_out)
            extra, amount = fallback_seconds, seconds
            if split:
                extra, amount = self._fallback_cells()[reason is not None], 1.0
            self.store.finish(
                self.active if receipt is not None else None,
                counted,
                self.histogram,
                seconds,
                exemplar,
                receipt,
                self.seen,
                extra,
                amount,
            )
        if self.sdk_histogram is not None:
            record(self.sdk_histogram, seconds, self.sdk_attributes, context)
        if self.sample is not None:
            self.sample.append(seconds)
        if reason is None and self.successes is not None:
            self.successes.append(seconds)

    def left(self, receipt: Receipt) -> None:
        """A decorated call whose end was counted (`receipt.done`) leaves the running count, if still in it."""
        if self.active is not None:
            self.store.leave(self.active, receipt)

    def fallback_seconds(self, stage: str) -> Cell:
        """The fallback_chunk_seconds_total cell of chunks created by splits of tasks of `stage` (a valid value)."""
        return self.store.of(FALLBACK_CHUNK_SECONDS).cell((self._bound("stage", stage),))

    def _fallback_cells(self) -> tuple[Cell, Cell]:
        cells = self._fallback
        if cells is None:
            series = self.store.of(TASK_FALLBACK)
            cells = self._fallback = (series.cell((self.stage, "rescued")), series.cell((self.stage, "failed")))
        return cells

    def _succeeded(self) -> Tally:
        """Make the cells a success counts into, and the tally that counts it (returned)."""
        success = self.store.of(TASK_SUCCESS).cell((self.stage,)) if self.is_task else None
        self.tally = self.store.tally((self.executed, success, None), self.histogram, self.active)
        return self.tally

    def _failed(self, reason: str, timed_out: bool) -> Counted:
        label = self._bound("reason", reason)
        cells = self._failures.get((label, timed_out))
        if cells is None:
            store = self.store
            if self.is_task:
                failure = store.of(TASK_FAILURE).cell((self.stage, label))
            else:
                failure = store.of(CHUNK_FAILURE).cell((self.agent or UNKNOWN, label))
            timeout = store.of(TIMEOUT_EVENTS).cell((self.agent or UNKNOWN, self.stage, label)) if timed_out else None
            cells = self._failures[(label, timed_out)] = (self.executed, failure, timeout)
        return cells
