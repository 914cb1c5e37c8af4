"""The Docker watcher: the limits, usage and OOM kills of every labelled container of one engine.

Two daemon threads, neither on the scrape path (a scrape reads the store only):

- the **events** thread subscribes to the engine's container events *first*, from the
  engine's own clock, then lists the containers: a container started in between is in the
  list or in the events, never in neither. It records limits at `start` and `update`
  (each changed limit counts one elastic adjustment; discovering a container counts none),
  counts `oom` events, and forgets a container at `destroy`. When the stream ends or the
  engine cannot be reached it retries with backoff; on reconnecting it lists again, so
  what changed meanwhile is caught up.
- the **sampler** thread reads each running container's stats every `interval` seconds
  through at most `workers` calls at once, and sets the usage series from the engine's
  cumulative values.

Every fault (engine absent or restarted, socket without permission, container gone between
an event and its inspect) is one log line when the state changes and, for the engine, a
`degraded` health status; nothing raises out of the threads and nothing is recorded from a
reading that is not whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import Any

from eddie_otel import endpoint
from eddie_otel.docker import readings
from eddie_otel.docker.engine import Engine, EngineError, EventStream, Vanished, connect, one_line_reason
from eddie_otel.labels import LABEL_VALUE_RE, OTHER
from eddie_otel.recording import Recorder
from eddie_otel.runtime import current_recorder
from eddie_otel.threads import quietly

__all__ = ["DEFAULT_INTERVAL_SECONDS", "DEFAULT_LABEL", "DEFAULT_WORKERS", "DockerWatcher", "watch_docker"]

logger = logging.getLogger("eddie_otel")

# The label a container carries to be watched (any value), unless --label says otherwise.
DEFAULT_LABEL = "eddie.agent"
# How often the usage is read: a few scrape intervals' worth of resolution for little engine work.
DEFAULT_INTERVAL_SECONDS = 5.0
# Stats calls in flight at once. The engine answers each at its next one-second collection, so
# calls made together finish together: 32 at once read 160 containers in a 5-second interval.
DEFAULT_WORKERS = 32
# What the health check says until the engine has answered once.
CONNECTING = "connecting to the engine"
# Retry delays after the engine is lost: doubling from the first to the last.
FIRST_RETRY_SECONDS = 0.5
LAST_RETRY_SECONDS = 30.0


@dataclass
class _Container:
    """What the watcher knows of one container."""

    id: str
    name: str
    limits: readings.Limits
    started_at: str
    running: bool
    # Bumped when the container starts again (a new cgroup, whose counts start from zero):
    # a stats reading asked for before is then dropped.
    generation: int = 0
    # The counters as exported: what the container's earlier runs counted, plus this run's engine value.
    cpu_base: float = 0.0
    throttled_base: float = 0.0
    cpu: float = 0.0
    throttled: float = 0.0
    engine_cpu: float = 0.0
    engine_throttled: float = 0.0


@dataclass
class _Stats:
    """What the watcher has done, for tests and the cost measurement."""

    rounds: int = 0
    samples: int = 0
    last_round_seconds: float = 0.0
    events: int = 0
    connects: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


class DockerWatcher:
    """Watches one Docker Engine and records every container that carries `label`; `start()`, then `stop()`."""

    def __init__(
        self,
        *,
        docker_host: str | None = None,
        label: str = DEFAULT_LABEL,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        workers: int = DEFAULT_WORKERS,
        recorder: Callable[[], Recorder] = current_recorder,
        engine: Callable[[], Engine] | None = None,
        first_retry: float = FIRST_RETRY_SECONDS,
        last_retry: float = LAST_RETRY_SECONDS,
    ) -> None:
        if not label or label.startswith("="):
            raise ValueError(f"label must be KEY or KEY=VALUE, not {label!r}")
        if interval <= 0:
            raise ValueError(f"interval must be above 0 seconds, not {interval}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.docker_host = docker_host
        self.label = label
        self.interval = interval
        self.workers = workers
        self.stats = _Stats()
        self._recorder = recorder
        self._connect: Callable[[], Engine] = engine or (lambda: connect(docker_host))
        self._first_retry = first_retry
        self._last_retry = last_retry
        self._lock = threading.Lock()
        self._containers: dict[str, _Container] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._stream: EventStream | None = None
        self._events_engine: Engine | None = None
        self._sampling_engine: Engine | None = None
        # None while the engine answers; else why not (what /metrics/health says).
        self._problem: str | None = CONNECTING
        # The engine time of the last event handled, and the events handled at exactly that time.
        self._since: str | None = None
        self._seen_at_since: set[tuple[str, str]] = set()
        self._threads: list[threading.Thread] = []
        self._remove_health_check: Callable[[], None] | None = None
        self._capped = False

    # -------------------------------------------------------------- life

    @property
    def where(self) -> str:
        """The engine watched, as said in log lines."""
        return self.docker_host or "the local engine (DOCKER_HOST or the default socket)"

    def start(self) -> DockerWatcher:
        """Start watching in daemon threads; returns at once (`wait_ready` waits for the first listing)."""
        if self._threads:
            return self
        self._remove_health_check = endpoint.add_health_check(self.health)
        self._threads = [
            threading.Thread(target=self._watch, name="eddie-otel-docker-events", daemon=True),
            threading.Thread(target=self._sample_forever, name="eddie-otel-docker-stats", daemon=True),
        ]
        for thread in self._threads:
            quietly(thread.start)
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the running containers have been listed once; False when `timeout` passed first."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop both threads and release the engine connections; the series recorded stay."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            _quietly(stream.close)
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self._remove_health_check is not None:
            self._remove_health_check()
            self._remove_health_check = None
        for engine in (self._events_engine, self._sampling_engine):
            if engine is not None:
                _quietly(engine.close)
        self._events_engine = self._sampling_engine = None

    def __enter__(self) -> DockerWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def health(self) -> Mapping[str, str] | None:
        """None while the engine answers; else {"docker": why not}."""
        problem = self._problem
        return None if problem is None else {"docker": problem}

    def containers(self) -> dict[str, readings.Limits]:
        """The watched containers by name, with their limits."""
        with self._lock:
            return {tracked.name: tracked.limits for tracked in self._containers.values()}

    # -------------------------------------------------------------- events

    def _set_problem(self, problem: str | None) -> None:
        if problem == self._problem:
            return
        self._problem = problem
        if problem is None:
            logger.info(
                "eddie-otel docker-watch: watching %s: %d containers with label %s",
                self.where,
                len(self._containers),
                self.label,
            )
        else:
            logger.warning("eddie-otel docker-watch: %s (%s); retrying with backoff", problem, self.where)

    def _watch(self) -> None:
        delay = self._first_retry
        while not self._stop.is_set():
            try:
                self._follow()
                problem = "engine unreachable: the engine's event stream ended"
            except EngineError as error:
                problem = f"engine unreachable: {error}"
            except Exception as error:  # a bug of ours or an answer we do not understand: retried, never raised
                logger.debug("docker watcher: unexpected error", exc_info=True)
                problem = f"engine unreachable: {one_line_reason(error)}"
            engine, self._events_engine, self._stream = self._events_engine, None, None
            if engine is not None:
                _quietly(engine.close)
            if self._stop.is_set():
                return
            if self._problem is None:
                delay = self._first_retry
            self._set_problem(problem)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._last_retry)

    def _follow(self) -> None:
        engine = self._events_engine = self._connect()
        # Subscribe before listing, from the engine's own clock (or from the last event handled):
        # a container started meanwhile is in the events, the list, or both; both is harmless.
        since = self._since or engine.now()
        stream = self._stream = engine.events(since, self.label)
        if self._since is None:
            self._since = since
        self._reconcile(engine)
        self.stats.connects += 1
        self._set_problem(None)
        self._ready.set()
        for event in stream:
            if self._stop.is_set():
                return
            self._handle(engine, event)

    def _reconcile(self, engine: Engine) -> None:
        listed = engine.containers(self.label)
        present = {str(found.get("Id", "")) for found in listed}
        with self._lock:
            known = set(self._containers)
        for gone in known - present:
            self._forget(gone)
        for found in listed:
            container_id = str(found.get("Id", ""))
            if found.get("State") == "running" or container_id in known:
                self._observe(engine, container_id)

    def _handle(self, engine: Engine, event: Mapping[str, Any]) -> None:
        if event.get("Type", "container") != "container":
            return
        action = str(event.get("Action") or event.get("status") or "")
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or event.get("id") or "")
        stamp = event.get("timeNano")
        if isinstance(stamp, int):
            moment = f"{stamp // 1_000_000_000}.{stamp % 1_000_000_000:09d}"
            mark = (container_id, action)
            if moment == self._since and mark in self._seen_at_since:
                return  # seen before a reconnection
            if moment != self._since:
                self._since, self._seen_at_since = moment, set()
            self._seen_at_since.add(mark)
        self.stats.events += 1
        if action in ("start", "update", "unpause"):
            self._observe(engine, container_id)
        elif action == "oom":
            self._oom(engine, container_id)
        elif action == "die":
            with self._lock:
                tracked = self._containers.get(container_id)
                if tracked is not None:
                    tracked.running = False
        elif action == "destroy":
            self._forget(container_id)
        elif action == "rename":
            self._forget(container_id)
            self._observe(engine, container_id)

    def _skip(self, container_id: str, why: str) -> None:
        if self.stats.skipped.get(container_id) != why:
            self.stats.skipped[container_id] = why
            logger.warning("eddie-otel docker-watch: not recording container %s: %s", container_id[:12], why)

    def _observe(self, engine: Engine, container_id: str) -> None:
        """Inspect a container and record its limits: at discovery as they are, later each change as an adjustment."""
        try:
            inspected = engine.inspect(container_id)
        except Vanished:
            logger.debug("docker watcher: container %s is gone before its inspect", container_id[:12])
            self._forget(container_id)
            return
        name = str(inspected.get("Name", "")).lstrip("/")
        state = inspected.get("State") or {}
        started_at = str(state.get("StartedAt", ""))
        running = bool(state.get("Running"))
        limits = readings.limits(inspected)
        recorder = self._recorder()
        with self._lock:
            tracked = self._containers.get(container_id)
            if tracked is None:
                if LABEL_VALUE_RE.fullmatch(name) is None:
                    self._skip(container_id, f"its name {name[:80]!r} is not a label value (letters, digits, _.:/-)")
                    return
                if recorder.bound("container", name) == OTHER:
                    if not self._capped:
                        # Once: past the cap, every new container would say the same.
                        self._capped = True
                        self._skip(
                            container_id,
                            f"{name} and any further container: the container label reached its cap of "
                            "distinct values (EDDIE_OTEL_MAX_LABEL_VALUES)",
                        )
                    return
                tracked = _Container(container_id, name, limits, started_at, running)
                self._containers[container_id] = tracked
                recorder.container_seen(name)
                recorder.container_limits(name, limits.cpu_millicores, limits.memory_bytes, ())
                return
            changes = readings.adjustments(tracked.limits, limits)
            if changes:
                recorder.container_limits(name, limits.cpu_millicores, limits.memory_bytes, changes)
            tracked.limits = limits
            tracked.running = running
            if started_at != tracked.started_at:
                # Started again: a new cgroup counts from zero; the exported counters go on from where they are.
                tracked.started_at = started_at
                tracked.generation += 1
                tracked.cpu_base, tracked.throttled_base = tracked.cpu, tracked.throttled
                tracked.engine_cpu = tracked.engine_throttled = 0.0

    def _oom(self, engine: Engine, container_id: str) -> None:
        with self._lock:
            known = container_id in self._containers
        if not known:
            self._observe(engine, container_id)
        with self._lock:
            tracked = self._containers.get(container_id)
            if tracked is not None:
                self._recorder().container_oom(tracked.name)

    def _forget(self, container_id: str) -> None:
        with self._lock:
            tracked = self._containers.pop(container_id, None)
            if tracked is not None:
                self._recorder().forget("container", tracked.name)
        self.stats.skipped.pop(container_id, None)

    # -------------------------------------------------------------- usage

    def _sample_forever(self) -> None:
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="eddie-otel-docker-stat")
        try:
            pause = 0.0
            while not self._stop.wait(pause):
                began = time.monotonic()
                try:
                    self._sample_round(pool)
                except Exception:
                    logger.debug("docker watcher: a sampling round failed", exc_info=True)
                elapsed = time.monotonic() - began
                self.stats.last_round_seconds = elapsed
                pause = max(0.0, self.interval - elapsed)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def sample_now(self) -> None:
        """Read every running container's usage once, now (what the sampler does each interval)."""
        with ThreadPoolExecutor(self.workers) as pool:
            self._sample_round(pool)

    def _sample_round(self, pool: ThreadPoolExecutor) -> None:
        if self._problem is not None:
            return
        engine = self._sampling_engine
        if engine is None:
            try:
                engine = self._sampling_engine = self._connect()
            except EngineError:
                return
        recorder = self._recorder()
        with self._lock:
            targets = [(tracked.id, tracked.generation) for tracked in self._containers.values() if tracked.running]
            # Touch the limits, so that a series TTL never drops a limit that still holds.
            for tracked in self._containers.values():
                limits = tracked.limits
                recorder.container_limits(tracked.name, limits.cpu_millicores, limits.memory_bytes, ())
        futures = [pool.submit(self._sample_one, engine, *target) for target in targets]
        wait_for(futures)
        failed = [future.exception() for future in futures if future.exception() is not None]
        if failed and all(isinstance(error, EngineError) for error in failed) and len(failed) == len(futures):
            # Every call failed: the connection is bad; a new one next round.
            self._sampling_engine = None
            _quietly(engine.close)
        self.stats.rounds += 1

    def _sample_one(self, engine: Engine, container_id: str, generation: int) -> None:
        try:
            reading = readings.usage(engine.stats(container_id))
        except Vanished:
            return
        if reading is None or self._stop.is_set():
            return
        with self._lock:
            tracked = self._containers.get(container_id)
            if tracked is None or tracked.generation != generation or not tracked.running:
                return  # destroyed, restarted or stopped since the call began: the reading is not this run's
            if reading.cpu_seconds < tracked.engine_cpu or reading.throttled_seconds < tracked.engine_throttled:
                return  # a count went back: not a reading of this run
            tracked.engine_cpu, tracked.engine_throttled = reading.cpu_seconds, reading.throttled_seconds
            tracked.cpu = tracked.cpu_base + reading.cpu_seconds
            tracked.throttled = tracked.throttled_base + reading.throttled_seconds
            self._recorder().container_usage(tracked.name, tracked.cpu, tracked.throttled, reading.memory_bytes)
            self.stats.samples += 1


def _quietly(close: Callable[[], object]) -> None:
    try:
        close()
    except Exception:
        logger.debug("docker watcher: closing a connection failed", exc_info=True)


def watch_docker(
    docker_host: str | None = None,
    label: str = DEFAULT_LABEL,
    *,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    workers: int = DEFAULT_WORKERS,
) -> DockerWatcher:
    """Start watching the Docker Engine at `docker_host` (None: DOCKER_HOST, else the local socket).

    Every container carrying `label` (KEY, or KEY=VALUE) is recorded into the configured
    runtime, with `container` = its name: limits, usage, OOM kills. Returns the running
    watcher; `stop()` ends it. Needs the `docker` extra.
    """
    return DockerWatcher(docker_host=docker_host, label=label, interval=interval, workers=workers).start()
