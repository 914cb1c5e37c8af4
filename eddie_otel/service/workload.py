"""A simulated distributed-fallback workload: what `eddie-otel demo` runs to drive every metric.

Agents, each in its own container, run tasks of several stages. A task that
times out is split, inside its own call, into 2 to 4 chunks that run concurrently
on the agents; a chunk that times out (or returns past its deadline) is split again
one level deeper, until the maximum fallback depth refuses the split and the chunk
is given up. The chunk results are merged, duplicates removed: a task whose merge
holds any result is rescued (it succeeds), else it fails with its timeout. Container
limits are set at start and adjusted elastically along the way. The agents say their
capacity at start and again as heartbeats, each stage's timeout is set, and every
task and chunk records its model usage, priced from the packaged example price table. Everything is recorded through the
public API of eddie_otel only: the decorators and the record calls. With tracing on,
each task's fallback is one trace: a `fallback task-N` span holding the task's span,
the split, and a `fallback <key>` span per split level whose chunks (run in the chunk
pool through `eddie_otel.propagate`) are its children.

Every decision is drawn from one `random.Random(seed)` by the planner, in one
thread and ahead of execution, so a seed gives the same decisions however the
worker threads interleave. When the run is stopped, work already started
finishes at once (its pauses cut short), so what ran is always the plan up to
the first task not started (see `Workload.plan`).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from opentelemetry import trace

import eddie_otel
from eddie_otel import prices, runtime
from eddie_otel.config import Settings

__all__ = ["STAGES", "Adjustment", "ChunkPlan", "Step", "TaskPlan", "Workload"]

logger = logging.getLogger("eddie_otel")

# Median seconds of a task per stage at speed 1.0: planning is quick, codegen is the long pole.
STAGES: dict[str, float] = {"planning": 0.25, "codegen": 0.9, "review": 0.45, "test": 0.6}
CHUNK_MEDIAN = 0.3
# The sigma of the log-normal durations: a p99 around five times the median, like real agent work.
SPREAD = 0.7
SHORTEST, LONGEST = 0.02, 4.0
# The timeout each stage runs with (task_timeout_seconds): no successful task runs longer.
STAGE_TIMEOUT_SECONDS = LONGEST
# After the opening, a burst of quick planning tasks: as many successes as a stage needs before a
# timeout is recommended (task_timeout_recommended_seconds), so that it has a value within seconds.
WARMUP_TASKS = Settings.timeout_min_samples
WARMUP_SECONDS = 0.03
# Tasks and chunks each agent says it can run at once, said at start and again every HEARTBEAT_SECONDS.
CAPACITY = 4
HEARTBEAT_SECONDS = 5.0
# The model each stage's tasks and chunks use, priced from eddie_otel/prices.example.yml, and the
# tokens they use: a base plus so many per second of work.
MODELS: dict[str, str] = {
    "planning": "gpt-4o-mini",
    "codegen": "claude-sonnet-4",
    "review": "gpt-4o",
    "test": "claude-haiku-3.5",
}
INPUT_TOKENS, INPUT_TOKENS_PER_SECOND = 2000, 6000
OUTPUT_TOKENS, OUTPUT_TOKENS_PER_SECOND = 300, 1200
# Mean pause between two task starts: about five tasks a second, so that a split (and
# its merge) comes every few seconds and every dashboard panel moves within a minute.
MEAN_GAP = 0.2

# Outcome odds. Tasks mostly succeed (the success-rate target is 95%); chunks time
# out more often than tasks because a chunk gets a tighter deadline.
TASK_TIMEOUT = 0.03
# Failures other than timeouts: 1% in all, so that with the timeouts the success rate
# sits at 96%, just above its target.
TASK_FAILURES: tuple[tuple[str, float], ...] = (
    ("ValueError", 0.005),
    ("RuntimeError", 0.003),
    ("ConnectionError", 0.002),
)
CHUNK_TIMEOUT = 0.12
CHUNK_LATE = 0.03
CHUNK_FAILURE = 0.02
CHUNK_DUPLICATE = 0.06
ADJUSTMENT_ODDS = 0.12
BOTH_UP_ODDS = 0.3

MAX_AGENTS = 100  # the default cap of distinct values per label
MIB = 2**20
CPU_STEP, CPU_MIN, CPU_MAX = 250, 250, 8000
MEMORY_MIN, MEMORY_MAX = 256 * MIB, 16384 * MIB
# How long a stopped run waits for a free slot before looking at `stop` again.
_POLL_SECONDS = 0.1

_ERRORS: dict[str, type[Exception]] = {
    "timeout": TimeoutError,
    "ValueError": ValueError,
    "RuntimeError": RuntimeError,
    "ConnectionError": ConnectionError,
}
STAT_NAMES = ("tasks", "chunks", "splits", "timeouts", "failures", "merges", "depth_exceeded", "adjustments")


@dataclass(frozen=True)
class ChunkPlan:
    """One planned chunk: where it runs, for how long, how it ends, and its own split if it times out."""

    key: str  # the result it produces; a duplicate produces its sibling's
    agent: str
    seconds: float
    outcome: str  # "ok", "timeout", "late" (returns past its deadline) or an exception class name
    split: int = 0  # chunks it is split into when it times out
    chunks: tuple[ChunkPlan, ...] = ()  # empty when that split would be deeper than the maximum depth


@dataclass(frozen=True)
class TaskPlan:
    """One planned task: stage, agent, pause before it, duration, outcome and the split after a timeout."""

    number: int
    stage: str
    agent: str
    gap: float
    seconds: float
    outcome: str  # "ok", "timeout" or an exception class name
    split: int = 0
    chunks: tuple[ChunkPlan, ...] = ()


@dataclass(frozen=True)
class Adjustment:
    """One planned container update: the limits after it, and which elastic adjustment(s) led there."""

    container: str
    adjustment: str  # "initial" or one of ADJUSTMENT_TYPES
    cpu_millicores: int
    memory_bytes: int
    also: str | None = None  # a second adjustment made in the same update


Step = TaskPlan | Adjustment


class _Planner:
    """Draws every decision of a run from one random.Random, in order."""

    def __init__(self, seed: int, agents: tuple[str, ...], max_depth: int) -> None:
        self.rng = random.Random(seed)
        self.agents = agents
        self.max_depth = max_depth
        self.limits: dict[str, list[int]] = {}

    def steps(self) -> Iterator[Step]:
        yield from self._initial()
        yield from self._opening()
        yield from self._warmup()
        for number in itertools.count(4 + WARMUP_TASKS):
            task = self._task(number)
            yield task
            if task.outcome == "timeout":
                yield self._scale_up(_container(task.agent))
            elif self.rng.random() < ADJUSTMENT_ODDS:
                yield self._random_adjustment()

    def _initial(self) -> Iterator[Step]:
        for agent in self.agents:
            container = _container(agent)
            cpu = self.rng.choice((500, 1000, 2000))
            memory = self.rng.choice((512, 1024, 2048)) * MIB
            self.limits[container] = [cpu, memory]
            yield Adjustment(container, "initial", cpu, memory)

    def _opening(self) -> Iterator[Step]:
        # The first seconds cover every metric on purpose: a timeout split into
        # chunks, one of which keeps timing out past the maximum depth, a merge
        # with a duplicate, an elastic adjustment, a success and a failure.
        first, agents = self.agents[0], self.agents
        key = "task-0"
        chunks = (
            self._doomed(f"{key}.0", 1, agents[1 % len(agents)]),
            ChunkPlan(f"{key}.1", agents[2 % len(agents)], 0.15, "ok"),
            ChunkPlan(f"{key}.1", agents[3 % len(agents)], 0.2, "ok"),
        )
        yield TaskPlan(0, "codegen", first, 0.0, 0.4, "timeout", 3, chunks if self.max_depth >= 1 else ())
        yield self._adjust(_container(first), "cpu_up")
        yield TaskPlan(1, "planning", agents[1 % len(agents)], 0.05, 0.1, "ok")
        yield TaskPlan(2, "review", agents[2 % len(agents)], 0.1, 0.3, "ValueError")
        yield TaskPlan(3, "test", agents[3 % len(agents)], 0.1, 0.3, "ok")

    def _warmup(self) -> Iterator[Step]:
        for number in range(4, 4 + WARMUP_TASKS):
            yield TaskPlan(number, "planning", self.agents[number % len(self.agents)], 0.0, WARMUP_SECONDS, "ok")

    def _doomed(self, key: str, depth: int, agent: str) -> ChunkPlan:
        """A chunk that times out at every depth, until a split is refused."""
        if depth + 1 > self.max_depth:
            return ChunkPlan(key, agent, 0.25, "timeout", 2)
        other = self.agents[(self.agents.index(agent) + 1) % len(self.agents)]
        children = (self._doomed(f"{key}.0", depth + 1, other), ChunkPlan(f"{key}.1", agent, 0.1, "ok"))
        return ChunkPlan(key, agent, 0.25, "timeout", 2, children)

    def _task(self, number: int) -> TaskPlan:
        rng = self.rng
        stage = rng.choice(tuple(STAGES))
        agent = rng.choice(self.agents)
        gap = rng.expovariate(1 / MEAN_GAP)
        roll = rng.random()
        if roll < TASK_TIMEOUT:
            # A timed-out task ran until its deadline.
            split = rng.randint(2, 4)
            chunks = self._chunks(f"task-{number}", split, 1) if self.max_depth >= 1 else ()
            return TaskPlan(number, stage, agent, gap, rng.uniform(1.0, 2.5), "timeout", split, chunks)
        outcome = "ok"
        threshold = TASK_TIMEOUT
        for name, odds in TASK_FAILURES:
            threshold += odds
            if roll < threshold:
                outcome = name
                break
        return TaskPlan(number, stage, agent, gap, self._duration(STAGES[stage]), outcome)

    def _chunks(self, key: str, count: int, depth: int) -> tuple[ChunkPlan, ...]:
        rng = self.rng
        chunks: list[ChunkPlan] = []
        for index in range(count):
            agent = rng.choice(self.agents)
            roll = rng.random()
            if roll < CHUNK_TIMEOUT + CHUNK_LATE:
                outcome = "timeout" if roll < CHUNK_TIMEOUT else "late"
                split = rng.randint(2, 4)
                own = f"{key}.{index}"
                children = self._chunks(own, split, depth + 1) if depth + 1 <= self.max_depth else ()
                chunks.append(ChunkPlan(own, agent, rng.uniform(0.3, 0.8), outcome, split, children))
                continue
            roll -= CHUNK_TIMEOUT + CHUNK_LATE
            seconds = self._duration(CHUNK_MEDIAN)
            if roll < CHUNK_FAILURE:
                chunks.append(ChunkPlan(f"{key}.{index}", agent, seconds, "RuntimeError"))
            elif roll < CHUNK_FAILURE + CHUNK_DUPLICATE and index > 0:
                # Overlapping chunk boundaries: the same result comes back twice.
                chunks.append(ChunkPlan(chunks[-1].key, agent, seconds, "ok"))
            else:
                chunks.append(ChunkPlan(f"{key}.{index}", agent, seconds, "ok"))
        return tuple(chunks)

    def _duration(self, median: float) -> float:
        return min(LONGEST, max(SHORTEST, self.rng.lognormvariate(math.log(median), SPREAD)))

    def _scale_up(self, container: str) -> Adjustment:
        cpu, memory = self.limits[container]
        if cpu < CPU_MAX and memory < MEMORY_MAX and self.rng.random() < BOTH_UP_ODDS:
            return self._adjust(container, "memory_up", also="cpu_up")
        return self._adjust(container, "cpu_up" if cpu < CPU_MAX else "memory_up")

    def _random_adjustment(self) -> Adjustment:
        container = _container(self.rng.choice(self.agents))
        cpu, memory = self.limits[container]
        possible = [
            kind
            for kind, allowed in (
                ("cpu_up", cpu < CPU_MAX),
                ("cpu_down", cpu > CPU_MIN),
                ("memory_up", memory < MEMORY_MAX),
                ("memory_down", memory > MEMORY_MIN),
            )
            if allowed
        ]
        return self._adjust(container, self.rng.choice(possible))

    def _adjust(self, container: str, kind: str, also: str | None = None) -> Adjustment:
        limits = self.limits[container]
        for change in (kind, also):
            if change == "cpu_up":
                limits[0] = min(CPU_MAX, limits[0] + 2 * CPU_STEP)
            elif change == "cpu_down":
                limits[0] = max(CPU_MIN, limits[0] - CPU_STEP)
            elif change == "memory_up":
                limits[1] = min(MEMORY_MAX, limits[1] * 2)
            elif change == "memory_down":
                limits[1] = max(MEMORY_MIN, limits[1] // 2)
        return Adjustment(container, kind, limits[0], limits[1], also)


def _container(agent: str) -> str:
    return f"{agent}-container"


def usage(stage: str, seconds: float) -> tuple[str, int, int]:
    """The model, input and output tokens of `seconds` of work of `stage`."""
    return (
        MODELS[stage],
        round(INPUT_TOKENS + INPUT_TOKENS_PER_SECOND * seconds),
        round(OUTPUT_TOKENS + OUTPUT_TOKENS_PER_SECOND * seconds),
    )


class _Agent:
    """One simulated agent: runs tasks and chunks, each recorded by the decorators, with its model usage."""

    def __init__(self, name: str, pause: Callable[[float], object], table: prices.Prices) -> None:
        self.name = name
        self._pause = pause
        self._prices = table

    @eddie_otel.task(stage=lambda self, plan, rescue: plan.stage, agent=lambda self, plan, rescue: self.name)
    def run_task(self, plan: TaskPlan, rescue: Callable[[TaskPlan], bool]) -> None:
        """Run the task; when it times out, `rescue` splits it inside this call: True when the fallback rescued it."""
        self._pause(plan.seconds)
        self._use(plan.stage, plan.seconds)
        if plan.outcome == "timeout" and rescue(plan):
            # The merged chunk results stand for the task's: it succeeds, its timeout counted all the same.
            eddie_otel.record_timeout(agent=self.name, stage=plan.stage, reason="timeout")
            return
        if plan.outcome != "ok":
            raise _ERRORS[plan.outcome](f"task-{plan.number} ({plan.stage}) on {self.name}: {plan.outcome}")

    @eddie_otel.chunk(
        agent=lambda self, chunk, stage, depth: self.name,
        stage=lambda self, chunk, stage, depth: stage,
        depth=lambda self, chunk, stage, depth: depth,
    )
    def run_chunk(self, chunk: ChunkPlan, stage: str, depth: int) -> str:
        self._pause(chunk.seconds)
        self._use(stage, chunk.seconds)
        if chunk.outcome not in ("ok", "late"):
            raise _ERRORS[chunk.outcome](f"chunk {chunk.key} on {self.name}: {chunk.outcome}")
        return chunk.key

    def _use(self, stage: str, seconds: float) -> None:
        model, input_tokens, output_tokens = usage(stage, seconds)
        cost = self._prices.cost(model, input_tokens, output_tokens)
        eddie_otel.record_usage(self.name, model, input_tokens, output_tokens, cost)


class Workload:
    """A simulated distributed-fallback workload that records through the public API only."""

    def __init__(self, *, seed: int = 42, agents: int = 4, speed: float = 1.0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, not {type(seed).__name__}")
        if isinstance(agents, bool) or not isinstance(agents, int):
            raise ValueError(f"agents must be an integer, not {type(agents).__name__}")
        if not 1 <= agents <= MAX_AGENTS:
            raise ValueError(f"agents must be between 1 and {MAX_AGENTS}, not {agents}")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a finite number above 0, not {speed!r}")
        self.seed = seed
        self.agents = tuple(f"agent-{number}" for number in range(1, agents + 1))
        self.speed = float(speed)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(STAT_NAMES, 0)
        # Made-up cumulative CPU and throttled seconds per container (see `_use`).
        self._used: dict[str, list[float]] = {}
        self._scaled_up: set[str] = set()
        self._prices = prices.load(str(prices.EXAMPLE))

    def plan(self, n: int, *, max_depth: int = Settings.max_fallback_depth) -> list[Step]:
        """The first `n` steps a run makes: a pure function of the seed, the agents and `max_depth`."""
        return list(itertools.islice(_Planner(self.seed, self.agents, max_depth).steps(), n))

    def stats(self) -> dict[str, int]:
        """What the run did so far: tasks, chunks, splits, timeouts, failures, merges, depth_exceeded, adjustments."""
        with self._lock:
            return dict(self._counts)

    def run(self, stop: threading.Event) -> None:
        """Run the plan until `stop` is set; returns once the work already started has finished, at once."""
        configured = runtime.current()
        max_depth = configured.settings.max_fallback_depth
        # The fallback spans come from the tracer of the decorators' spans: one tree per task.
        tracer = configured.tracing.tracer if configured.tracing is not None else trace.NoOpTracer()
        agents = {
            name: _Agent(name, lambda seconds: stop.wait(seconds / self.speed), self._prices) for name in self.agents
        }
        for stage in STAGES:
            eddie_otel.set_timeout(stage, STAGE_TIMEOUT_SECONDS)
        self._heartbeat()
        beat = time.monotonic()
        slots = threading.BoundedSemaphore(len(self.agents))
        # The chunk pool is entered first so that it closes last: tasks submit chunks until they end.
        with (
            ThreadPoolExecutor(min(4 * len(self.agents), 64), "eddie-workload-chunk") as chunk_pool,
            ThreadPoolExecutor(len(self.agents), "eddie-workload-task") as task_pool,
        ):
            fallback = _Fallback(self, agents, chunk_pool, tracer)
            for step in _Planner(self.seed, self.agents, max_depth).steps():
                # Adjustments are instant and apply even once stopped, up to the next task:
                # what ran is then exactly the plan up to the first task not started.
                if isinstance(step, Adjustment):
                    self._apply(step)
                    continue
                if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                    self._heartbeat()
                    beat = time.monotonic()
                if stop.wait(step.gap / self.speed) or not _acquire(slots, stop):
                    break
                future = task_pool.submit(fallback.task, step)
                future.add_done_callback(lambda _: slots.release())

    def _heartbeat(self) -> None:
        # Each agent says it is alive, and how many tasks and chunks it runs at once.
        for name in self.agents:
            eddie_otel.set_agent_capacity(name, CAPACITY)

    def _apply(self, step: Adjustment) -> None:
        if step.also is not None:
            eddie_otel.record_elastic_adjustment(container=step.container, type=step.also)
            self._count("adjustments")
        eddie_otel.record_docker_allocation(
            container=step.container,
            cpu_millicores=step.cpu_millicores,
            memory_bytes=step.memory_bytes,
            adjustment=step.adjustment,
        )
        if step.adjustment != "initial":
            self._count("adjustments")
        self._use(step)

    def _use(self, step: Adjustment) -> None:
        # What `eddie-otel docker-watch` would read from the engine, made up from the plan: at each
        # update the container has used half its CPU limit for a second since the last one (and been
        # throttled a tenth of that), holds half its memory, and was OOM-killed before a memory raise and
        # before its first scale-up.
        recorder = runtime.current_recorder()
        with self._lock:
            used = self._used.setdefault(step.container, [0.0, 0.0])
            used[0] += step.cpu_millicores / 2000
            used[1] += step.cpu_millicores / 20000
            cpu_seconds, throttled_seconds = used
            scaled_up = step.adjustment != "initial" and step.container not in self._scaled_up
            if scaled_up:
                self._scaled_up.add(step.container)
        recorder.container_usage(step.container, cpu_seconds, throttled_seconds, step.memory_bytes // 2)
        if "memory_up" in (step.adjustment, step.also) or (scaled_up and step.adjustment.endswith("_up")):
            recorder.container_oom(step.container)

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount


def _acquire(slots: threading.BoundedSemaphore, stop: threading.Event) -> bool:
    """Wait for a free agent slot; False when `stop` is set first."""
    while not slots.acquire(timeout=_POLL_SECONDS):
        if stop.is_set():
            return False
    if stop.is_set():
        slots.release()
        return False
    return True


class _Fallback:
    """Runs one task and, when it times out, the recursive split-run-merge of its chunks."""

    def __init__(
        self, workload: Workload, agents: dict[str, _Agent], chunk_pool: ThreadPoolExecutor, tracer: trace.Tracer
    ) -> None:
        self._workload = workload
        self._agents = agents
        self._chunk_pool = chunk_pool
        self._tracer = tracer

    def task(self, plan: TaskPlan) -> None:
        name = f"fallback task-{plan.number}"
        with self._tracer.start_as_current_span(name, attributes={"eddie.stage": plan.stage}):
            self._task(plan)

    def _task(self, plan: TaskPlan) -> None:
        count = self._workload._count
        try:
            try:
                self._agents[plan.agent].run_task(plan, self._rescue)
            except Exception:
                count("tasks")
                count("failures")
            else:
                count("tasks")
        except Exception:
            # A bug here must not pass silently into a future nobody reads.
            logger.exception("eddie-otel workload: task-%d broke", plan.number)

    def _rescue(self, plan: TaskPlan) -> bool:
        """The task timed out: split it (inside its call, so that its end counts as rescued or failed) and run
        its chunks; True when the merge holds a result."""
        self._workload._count("timeouts")
        if not self._split(plan.agent, plan.split, 1):
            return False
        return self._run(plan.chunks, 1, plan.stage, f"task-{plan.number}") is not None

    def _split(self, agent: str, chunks: int, depth: int) -> bool:
        if eddie_otel.record_split(agent=agent, chunks=chunks, depth=depth):
            self._workload._count("splits")
            return True
        self._workload._count("depth_exceeded")
        return False

    def _run(self, chunks: tuple[ChunkPlan, ...], depth: int, stage: str, key: str) -> str | None:
        """Run `chunks` concurrently, split the ones that time out, merge the results; the merged key or None."""
        attributes: dict[str, str | int] = {"eddie.fallback.depth": depth, "eddie.stage": stage}
        with self._tracer.start_as_current_span(f"fallback {key}", attributes=attributes):
            return self._run_level(chunks, depth, stage, key)

    def _run_level(self, chunks: tuple[ChunkPlan, ...], depth: int, stage: str, key: str) -> str | None:
        count = self._workload._count
        futures: list[Future[str]] = [
            self._chunk_pool.submit(eddie_otel.propagate(self._agents[chunk.agent].run_chunk), chunk, stage, depth)
            for chunk in chunks
        ]
        results: list[str] = []
        for chunk, future in zip(chunks, futures, strict=True):
            timed_out = False
            try:
                result = future.result()
            except TimeoutError:
                timed_out = True
            except Exception:
                pass  # a failed chunk is given up; the merge goes on without it
            else:
                if chunk.outcome == "late":
                    # The chunk came back, but past its deadline: its result is discarded.
                    eddie_otel.record_timeout(agent=chunk.agent, stage=stage, reason="deadline")
                    timed_out = True
                else:
                    results.append(result)
            count("chunks")
            if timed_out:
                count("timeouts")
                if self._split(chunk.agent, chunk.split, depth + 1) and chunk.chunks:
                    merged = self._run(chunk.chunks, depth + 1, stage, chunk.key)
                    if merged is not None:
                        results.append(merged)
        if not results:
            return None
        eddie_otel.record_merge(chunks_combined=len(results), duplicates_removed=len(results) - len(set(results)))
        count("merges")
        return key
