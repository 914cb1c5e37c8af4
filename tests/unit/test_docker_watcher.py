"""The Docker watcher against an engine stand-in: what it records, and how it rides out each fault."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

import eddie_otel
from eddie_otel import catalogue
from eddie_otel.catalogue import Metric
from eddie_otel.docker import DockerWatcher, readings
from eddie_otel.docker.engine import engine_timestamp, one_line_reason
from eddie_otel.endpoint import health_body
from eddie_otel.runtime import current
from tests.support.docker_fake import FakeEngine

MiB = 2**20


def values(metric: Metric) -> dict[tuple[str, ...], float]:
    return current().telemetry.store.of(metric).values()


def eventually(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.01)


@pytest.fixture
def engine() -> FakeEngine:
    eddie_otel.configure(serve=False)
    return FakeEngine()


@pytest.fixture
def watch(engine: FakeEngine) -> Iterator[Callable[..., DockerWatcher]]:
    started: list[DockerWatcher] = []

    def start(**options: object) -> DockerWatcher:
        watcher = DockerWatcher(
            engine=engine.connect,
            interval=3600,
            first_retry=0.02,
            last_retry=0.1,
            **options,  # type: ignore[arg-type]
        )
        started.append(watcher.start())
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


# ------------------------------------------------------------------ readings


def test_cpu_limit_comes_from_nano_cpus_or_quota_and_period() -> None:
    assert readings.limits({"HostConfig": {"NanoCpus": 1_500_000_000}}) == readings.Limits(1500.0, None)
    assert readings.limits({"HostConfig": {"CpuQuota": 50_000, "CpuPeriod": 100_000}}).cpu_millicores == 500.0
    assert readings.limits({"HostConfig": {"CpuQuota": 25_000, "CpuPeriod": 0}}).cpu_millicores == 250.0
    assert readings.limits({"HostConfig": {"CpuQuota": -1, "Memory": 64 * MiB}}) == readings.Limits(None, 64 * MiB)
    assert readings.limits({}) == readings.Limits(None, None)


def test_adjustments_between_two_limits() -> None:
    limits = readings.Limits
    assert readings.adjustments(limits(500, 64), limits(500, 64)) == []
    assert readings.adjustments(limits(500, 64), limits(1000, 32)) == ["cpu_up", "memory_down"]
    assert readings.adjustments(limits(None, None), limits(500, 64)) == ["cpu_down", "memory_down"]
    assert readings.adjustments(limits(500, 64), limits(None, None)) == ["cpu_up", "memory_up"]


def test_memory_usage_is_what_docker_stats_shows_on_cgroup_v1_and_v2() -> None:
    cpu = {"cpu_usage": {"total_usage": 2_500_000_000}, "throttling_data": {"throttled_time": 500_000_000}}
    v1 = {"cpu_stats": cpu, "memory_stats": {"usage": 100, "stats": {"total_inactive_file": 30, "inactive_file": 7}}}
    v2 = {"cpu_stats": cpu, "memory_stats": {"usage": 100, "stats": {"inactive_file": 30}}}
    assert readings.usage(v1) == readings.Usage(2.5, 0.5, 70)
    assert readings.usage(v2) == readings.Usage(2.5, 0.5, 70)
    # Inactive pages above usage (a race in the kernel's counts): usage as it is.
    assert readings.usage({"cpu_stats": cpu, "memory_stats": {"usage": 10, "stats": {"inactive_file": 30}}}) == (
        readings.Usage(2.5, 0.5, 10)
    )
    # A container that is not running has empty stats: no reading.
    assert readings.usage({"cpu_stats": {"cpu_usage": {}}, "memory_stats": {}}) is None


def test_engine_time_becomes_the_since_of_the_events() -> None:
    assert engine_timestamp("2026-12-07T05:37:42.243786959Z") == "1796621862.243786959"
    assert engine_timestamp("2026-12-07T06:37:42.5+01:00") == "1796621862.500000000"
    assert engine_timestamp("2026-12-07T05:37:42Z") == "1796621862.000000000"


def test_reasons_are_one_short_line() -> None:
    assert one_line_reason(OSError(13, "Permission denied")) == "permission denied on the engine's socket"
    assert one_line_reason(ConnectionError(FileNotFoundError(2, "No such file"))) == "no engine socket at that path"
    assert one_line_reason(RuntimeError("a\nb")) == "a b"


# ------------------------------------------------------------------ limits and events


def test_discovery_records_limits_and_counts_no_adjustment(
    engine: FakeEngine, watch: Callable[..., DockerWatcher]
) -> None:
    engine.run("agent-1", nano_cpus=500_000_000, memory=64 * MiB, emit=False)
    engine.run("agent-2", quota=150_000, period=100_000, emit=False)
    engine.run("bystander", labels={"other": "x"}, memory=MiB, emit=False)
    watcher = watch()
    assert watcher.wait_ready(5)
    # Subscribed before listing: nothing started in between is missed.
    assert engine.calls[:3] == ["now", "events", "containers"]
    assert values(catalogue.DOCKER_CPU_LIMIT) == {("agent-1",): 500.0, ("agent-2",): 1500.0}
    # agent-2 has no memory limit: no series.
    assert values(catalogue.DOCKER_MEMORY_LIMIT) == {("agent-1",): 64 * MiB}
    assert values(catalogue.DOCKER_ELASTIC_ADJUSTMENT) == {}
    assert values(catalogue.DOCKER_OOM_KILLS) == {("agent-1",): 0.0, ("agent-2",): 0.0}
    assert health_body("eddie", 0)["status"] == "ok"


def test_updates_count_one_adjustment_per_changed_limit(
    engine: FakeEngine, watch: Callable[..., DockerWatcher]
) -> None:
    watcher = watch()
    assert watcher.wait_ready(5)
    first = engine.run("agent-1", nano_cpus=500_000_000, memory=64 * MiB)
    eventually(lambda: ("agent-1",) in values(catalogue.DOCKER_CPU_LIMIT), "the started container")
    # The engine's update event carries no limits: the watcher inspects, so each update is handled before the next.
    for change in ({"NanoCpus": 1_000_000_000}, {"Memory": 32 * MiB}, {"NanoCpus": 250_000_000, "Memory": 128 * MiB}):
        handled = watcher.stats.events
        engine.update(first, **change)
        eventually(lambda handled=handled: watcher.stats.events > handled, "the update handled")
    engine.update(first, Memory=128 * MiB)  # no change: nothing counted
    expected = {
        ("agent-1", "cpu_up"): 1.0,
        ("agent-1", "cpu_down"): 1.0,
        ("agent-1", "memory_down"): 1.0,
        ("agent-1", "memory_up"): 1.0,
    }
    eventually(lambda: values(catalogue.DOCKER_ELASTIC_ADJUSTMENT) == expected, "four adjustments")
    assert values(catalogue.DOCKER_CPU_LIMIT) == {("agent-1",): 250.0}
    assert values(catalogue.DOCKER_MEMORY_LIMIT) == {("agent-1",): 128 * MiB}
    # A limit removed (--cpus 0): the series goes, and it counts as a step up.
    engine.update(first, NanoCpus=0)
    eventually(lambda: values(catalogue.DOCKER_CPU_LIMIT) == {}, "the CPU limit series dropped")
    assert values(catalogue.DOCKER_ELASTIC_ADJUSTMENT)[("agent-1", "cpu_up")] == 2.0


def test_oom_events_count_and_destroy_forgets_every_series(
    engine: FakeEngine, watch: Callable[..., DockerWatcher]
) -> None:
    watcher = watch()
    assert watcher.wait_ready(5)
    first = engine.run("agent-1", memory=8 * MiB)
    second = engine.run("agent-2", memory=8 * MiB)
    engine.emit(first, "oom")
    engine.emit(first, "oom")
    engine.emit(second, "oom")
    eventually(lambda: values(catalogue.DOCKER_OOM_KILLS) == {("agent-1",): 2.0, ("agent-2",): 1.0}, "three OOM kills")
    engine.remove(first)
    eventually(lambda: ("agent-1",) not in values(catalogue.DOCKER_MEMORY_LIMIT), "agent-1 forgotten")
    store = current().telemetry.store
    assert not [series for series in store.keys() if "agent-1" in series[1]]  # noqa: SIM118
    assert values(catalogue.DOCKER_OOM_KILLS) == {("agent-2",): 1.0}


def test_a_container_gone_between_its_event_and_its_inspect_records_nothing(
    engine: FakeEngine, watch: Callable[..., DockerWatcher]
) -> None:
    watcher = watch()
    assert watcher.wait_ready(5)
    engine.vanish_on_inspect.add(f"{1:064x}")
    engine.run("short-lived", memory=MiB)
    later = engine.run("agent-2", memory=2 * MiB)
    eventually(lambda: ("agent-2",) in values(catalogue.DOCKER_MEMORY_LIMIT), "the next container")
    assert later == f"{2:064x}"
    assert values(catalogue.DOCKER_MEMORY_LIMIT) == {("agent-2",): 2 * MiB}
    assert health_body("eddie", 0)["status"] == "ok"


def test_an_engine_absent_at_start_is_retried_and_the_health_says_so(
    engine: FakeEngine, watch: Callable[..., DockerWatcher], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "eddie_otel")
    engine.down = "no engine socket at that path"
    engine.run("agent-1", memory=MiB, emit=False)
    watcher = watch()
    eventually(lambda: health_body("eddie", 0).get("docker", "").startswith("engine unreachable"), "degraded")
    body = health_body("eddie", 0)
    assert body["status"] == "degraded"
    assert body["docker"] == "engine unreachable: no engine socket at that path"
    time.sleep(0.3)  # several retries: still one line
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert values(catalogue.DOCKER_MEMORY_LIMIT) == {}
    engine.come_back()
    assert watcher.wait_ready(5)
    eventually(lambda: health_body("eddie", 0)["status"] == "ok", "healthy again")
    assert values(catalogue.DOCKER_MEMORY_LIMIT) == {("agent-1",): MiB}


def test_an_engine_restart_is_caught_up_on_reconnection(
    engine: FakeEngine, watch: Callable[..., DockerWatcher]
) -> None:
    kept = engine.run("kept", nano_cpus=1_000_000_000, emit=False)
    gone = engine.run("gone", nano_cpus=1_000_000_000, emit=False)
    watcher = watch()
    assert watcher.wait_ready(5)
    engine.crash()
    eventually(lambda: health_body("eddie", 0)["status"] == "degraded", "degraded")
    # While it was away: one container removed, one resized, one new.
    with engine.lock:
        del engine.containers_by_id[gone]
        engine.containers_by_id[kept]["HostConfig"]["NanoCpus"] = 2_000_000_000
    engine.run("new", nano_cpus=500_000_000, emit=False)
    engine.come_back()
    eventually(lambda: health_body("eddie", 0)["status"] == "ok", "reconnected")
    eventually(lambda: values(catalogue.DOCKER_CPU_LIMIT) == {("kept",): 2000.0, ("new",): 500.0}, "caught up")
    assert values(catalogue.DOCKER_ELASTIC_ADJUSTMENT) == {("kept", "cpu_up"): 1.0}
    assert watcher.stats.connects == 2


# ------------------------------------------------------------------ usage


def test_usage_is_set_from_the_engines_cumulative_counts(
    engine: FakeEngine, watch: Callable[..., DockerWatcher]
) -> None:
    first = engine.run("agent-1", memory=64 * MiB, emit=False)
    engine.set_usage(first, cpu_ns=2_000_000_000, throttled_ns=250_000_000, usage=10 * MiB, inactive=2 * MiB)
    watcher = watch()
    assert watcher.wait_ready(5)
    watcher.sample_now()
    assert values(catalogue.DOCKER_CPU_USAGE) == {("agent-1",): 2.0}
    assert values(catalogue.DOCKER_CPU_THROTTLED) == {("agent-1",): 0.25}
    assert values(catalogue.DOCKER_MEMORY_USAGE) == {("agent-1",): 8 * MiB}
    # A reading that goes back within one run is not this run's: ignored.
    engine.set_usage(first, cpu_ns=1_000_000_000, throttled_ns=250_000_000, usage=9 * MiB)
    watcher.sample_now()
    assert values(catalogue.DOCKER_CPU_USAGE) == {("agent-1",): 2.0}
    assert values(catalogue.DOCKER_MEMORY_USAGE) == {("agent-1",): 8 * MiB}
    # Stopped: no reading; started again: a new cgroup counts from zero, the counters go on.
    engine.stop(first)
    engine.restart(first)
    eventually(lambda: watcher.stats.events >= 2, "the restart seen")
    engine.set_usage(first, cpu_ns=500_000_000, throttled_ns=0, usage=3 * MiB)
    watcher.sample_now()
    assert values(catalogue.DOCKER_CPU_USAGE) == {("agent-1",): 2.5}
    assert values(catalogue.DOCKER_CPU_THROTTLED) == {("agent-1",): 0.25}
    assert values(catalogue.DOCKER_MEMORY_USAGE) == {("agent-1",): 3 * MiB}


def test_a_stopped_container_is_not_sampled(engine: FakeEngine, watch: Callable[..., DockerWatcher]) -> None:
    first = engine.run("agent-1", memory=64 * MiB, emit=False)
    watcher = watch()
    assert watcher.wait_ready(5)
    engine.stop(first)
    eventually(lambda: watcher.stats.events >= 1, "the stop seen")
    engine.set_usage(first, cpu_ns=0, throttled_ns=0, usage=0)
    watcher.sample_now()
    assert values(catalogue.DOCKER_MEMORY_USAGE) == {}
    # Its limits stay until it is removed.
    assert values(catalogue.DOCKER_MEMORY_LIMIT) == {("agent-1",): 64 * MiB}


def test_sampling_hundreds_of_containers_is_bounded_and_off_the_scrape_path(
    engine: FakeEngine, watch: Callable[..., DockerWatcher]
) -> None:
    eddie_otel.configure(serve=False, max_label_values=1000)
    for number in range(500):
        found = engine.run(f"agent-{number}", memory=64 * MiB, emit=False)
        engine.set_usage(found, cpu_ns=number * 1_000_000, throttled_ns=0, usage=MiB)
    watcher = watch(workers=4)
    assert watcher.wait_ready(10)
    began = time.process_time()
    watcher.sample_now()
    spent = time.process_time() - began
    assert len(values(catalogue.DOCKER_MEMORY_USAGE)) == 500
    # The watcher's own work per container and sample (the engine's calls aside) stays far below a millisecond.
    assert spent / 500 < 0.002, spent


def test_past_the_container_cap_one_line_and_no_series(
    engine: FakeEngine, watch: Callable[..., DockerWatcher], caplog: pytest.LogCaptureFixture
) -> None:
    eddie_otel.configure(serve=False, max_label_values=2)
    for number in range(5):
        engine.run(f"agent-{number}", memory=MiB, emit=False)
    watcher = watch()
    assert watcher.wait_ready(5)
    assert len(values(catalogue.DOCKER_MEMORY_LIMIT)) == 2
    assert ("other",) not in values(catalogue.DOCKER_MEMORY_LIMIT)
    assert len([r for r in caplog.records if "cap of distinct values" in r.getMessage()]) == 1


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="label"):
        DockerWatcher(label="=x")
    with pytest.raises(ValueError, match="interval"):
        DockerWatcher(interval=0)
    with pytest.raises(ValueError, match="workers"):
        DockerWatcher(workers=0)
