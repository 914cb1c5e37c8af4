"""Helpers shared by tests: record every metric once, parse an exposition, poll with a deadline.

Also what a summary's fallback is when nothing was split.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import eddie_otel
from eddie_otel.history import History
from eddie_otel.recording import Recorder
from eddie_otel.runtime import Runtime, current_recorder

# A summary's `fallback` (in process or for the fleet) when no task was split.
NOTHING_SPLIT = {
    "split_tasks": 0,
    "rescued": 0,
    "failed": 0,
    "rescue_ratio": None,
    "chunk_seconds": 0,
    "cost_usd": 0,
}


def record_every_metric() -> None:
    """Drive each metric of the catalogue through the public API at least once."""

    @eddie_otel.task(stage="codegen", agent="python-agent")
    def succeed() -> str:
        return "ok"

    @eddie_otel.task(stage="codegen", agent="python-agent")
    def fail() -> None:
        raise ValueError("boom")

    @eddie_otel.chunk(agent="python-agent")
    def run_chunk() -> int:
        return 1

    succeed()
    with contextlib.suppress(ValueError):
        fail()
    run_chunk()
    eddie_otel.record_chunk(agent="python-agent", duration_seconds=0.5, success=False, reason="crash")
    assert eddie_otel.record_split(agent="python-agent", chunks=3, depth=1)
    assert not eddie_otel.record_split(agent="python-agent", chunks=2, depth=4)
    eddie_otel.record_timeout(agent="python-agent", stage="codegen", reason="deadline")
    eddie_otel.record_merge(chunks_combined=3, duplicates_removed=1)
    eddie_otel.record_docker_allocation(container="agent-1", cpu_millicores=500, memory_bytes=512 * 2**20)
    eddie_otel.record_elastic_adjustment(container="agent-1", type="cpu_up")
    # What the Docker watcher records, through the recorder's trusted calls.
    recorder = current_recorder()
    recorder.container_usage("agent-1", cpu_seconds=12.5, throttled_seconds=0.25, memory_bytes=256 * 2**20)
    recorder.container_oom("agent-1")
    # The timeout in use, and enough successes of a stage of its own for a recommendation.
    eddie_otel.set_timeout(stage="deploy", seconds=30)
    for _ in range(50):
        eddie_otel.record_task(stage="deploy", duration_seconds=0.5)
    record_fallback_value()


def record_fallback_value() -> None:
    """Drive the fallback-value metrics: a split task rescued by a chunk (run through `propagate`) that
    waits and uses a model; an agent's capacity; usage priced from a cost given."""

    @eddie_otel.chunk(agent="rescue-agent")
    def rescue() -> None:
        eddie_otel.record_usage(
            agent="rescue-agent", model="gpt-4o", input_tokens=1000, output_tokens=200, cost_usd=0.5
        )

    @eddie_otel.task(stage="rescue", agent="rescue-agent")
    def split_task() -> None:
        assert eddie_otel.record_split(agent="rescue-agent", chunks=1, depth=1)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(eddie_otel.propagate(rescue)).result()

    split_task()
    eddie_otel.set_agent_capacity(agent="rescue-agent", slots=2)


def families(text: str) -> dict[str, tuple[str, list[Sample]]]:
    """Metric families of a text exposition: name -> (type, samples)."""
    return {family.name: (family.type, family.samples) for family in text_string_to_metric_families(text)}


def sample_value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample `name{labels}` in `text`; KeyError when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise KeyError(f"{name}{labels} not in the exposition")


def wait_until(condition: Callable[[], object], timeout: float, message: str, interval: float = 0.05) -> None:
    """Poll `condition` until it is true, or fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"{message} within {timeout} s")


def drive_history(runtime: Runtime, clock: Callable[[], float]) -> None:
    """Give `runtime` a fresh history read with `clock`, and a recorder that feeds it (and sweeps the store by it)."""
    runtime.history = History(runtime.telemetry.store, clock=clock)
    # Decorated functions holding the old recorder's sites resolve them again, from the new one.
    runtime.recorder.close()
    runtime.recorder = Recorder(runtime.settings, runtime.telemetry, runtime.history, runtime.tracing)


def scrape(port: int, accept: str | None = None, encoding: str | None = None) -> tuple[bytes, dict[str, str]]:
    """GET /metrics/prometheus on 127.0.0.1:`port` with these Accept headers: the body and the headers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics/prometheus")
    if accept:
        request.add_header("Accept", accept)
    if encoding:
        request.add_header("Accept-Encoding", encoding)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read(), dict(response.headers)


def server_ready(name: str, process: subprocess.Popen[bytes], log_path: Path, url: str) -> bool:
    """Whether the server `process` answers 200 at `url`/-/ready; its log in the error if it exited."""
    if process.poll() is not None:
        raise RuntimeError(f"{name} exited:\n" + log_path.read_text())
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False
