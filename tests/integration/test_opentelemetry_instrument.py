"""An app run under `opentelemetry-instrument`: eddie-otel borrows the SDK's provider and its series leave once.

Each test runs a small app the way users run it, `opentelemetry-instrument python app.py`,
with the SDK's own exporters chosen by OTEL_* variables: eddie's series and the app's
own counter must arrive through those exporters exactly once, whether the app calls
`eddie_otel.configure()` itself or leaves it to the `eddie_otel` instrumentor entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eddie_otel.catalogue import METRICS, SELF_METRICS
from tests.conftest import free_port
from tests.support.otlp_receiver import OtlpReceiver

REQUESTS = 7  # app.requests added by the app
TASKS = 5  # decorated calls; those with i % 3 == 0 (0 and 3) raise
FAILED = 2
RESULTS = [None, 10, 20, None, 40]
SERVICE = "instrumented-app"
EDDIE_NAMES = {metric.otel_name for metric in (*METRICS, *SELF_METRICS)}
DELTA, CUMULATIVE = 1, 2  # OTLP AggregationTemporality

APP = textwrap.dedent(
    f"""
    import json
    import os
    import sys
    import time

    from opentelemetry import metrics

    import eddie_otel

    if os.environ.get("APP_CONFIGURE") == "1":
        eddie_otel.configure()
    requests = metrics.get_meter("app").create_counter("app.requests")
    for _ in range({REQUESTS}):
        requests.add(1, {{"route": "/"}})


    @eddie_otel.task(stage="codegen", agent="a1")
    def work(i):
        if i % 3 == 0:
            raise ValueError(i)
        return i * 10


    results = []
    for i in range({TASKS}):
        try:
            results.append(work(i))
        except ValueError:
            results.append(None)
    split = eddie_otel.record_split(agent="a1", chunks=3, depth=1)
    print(json.dumps({{"results": results, "split": split}}), flush=True)
    if os.environ.get("APP_WAIT") == "1":
        sys.stdin.readline()
    # Long enough for a few periodic exports of every reader the provider has, then the last one.
    time.sleep(float(os.environ.get("APP_LINGER", "0")))
    metrics.get_meter_provider().force_flush()
    """
)


@dataclass(frozen=True)
class Point:
    """One data point of one OTLP export request, as the receiver decoded it."""

    export: int
    resource: frozenset[tuple[str, str]]
    scope: str
    metric: str
    attributes: frozenset[tuple[str, str]]
    temporality: int
    start: int
    value: float  # a histogram's count


def exported_points(receiver: OtlpReceiver) -> list[Point]:
    """Every data point of every metrics request received, in order."""
    found = []
    for export, request in enumerate(list(receiver.requests["/v1/metrics"])):
        for resource_metrics in request.resource_metrics:
            resource = frozenset((kv.key, kv.value.string_value) for kv in resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    temporality = getattr(data, "aggregation_temporality", 0)
                    for point in data.data_points:
                        if kind == "histogram":
                            value: float = point.count
                        else:
                            value = getattr(point, point.WhichOneof("value"))
                        attributes = frozenset((kv.key, kv.value.string_value) for kv in point.attributes)
                        found.append(
                            Point(
                                export,
                                resource,
                                scope_metrics.scope.name,
                                metric.name,
                                attributes,
                                temporality,
                                point.start_time_unix_nano,
                                value,
                            )
                        )
    return found


def of(points: list[Point], metric: str, **attributes: str) -> list[Point]:
    """The points of one series."""
    wanted = frozenset(attributes.items())
    return [point for point in points if point.metric == metric and point.attributes == wanted]


def environment(**variables: str) -> dict[str, str]:
    """This environment (the autouse fixture has removed the caller's OTEL_* variables) plus the SDK's settings."""
    env = dict(os.environ)
    env.update(
        OTEL_SERVICE_NAME=SERVICE,
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="100",
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


def command(tmp_path: Path, source: str = APP) -> list[str]:
    """`opentelemetry-instrument python app.py`, from this interpreter's environment."""
    app = tmp_path / "app.py"
    app.write_text(source)
    return [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(app)]


def run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the app to its end (its exports are all received by then) and check its own output."""
    done = subprocess.run(command(tmp_path), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"results": RESULTS, "split": True}, done.stdout
    # Neither an exception nor a warning or error of eddie-otel's (those reach stderr through logging's last resort).
    assert "Traceback" not in done.stderr, done.stderr
    assert "eddie-otel:" not in done.stderr, done.stderr
    return done


def otlp(receiver: OtlpReceiver, temporality: str, **variables: str) -> dict[str, str]:
    """OTLP/HTTP metrics to `receiver` in `temporality`."""
    return environment(
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",  # the distro's default is grpc
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"{receiver.endpoint}/v1/metrics",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=temporality,
        APP_LINGER="0.5",
        **variables,
    )


@pytest.mark.parametrize("configure", [True, False], ids=["app-configures", "entry-point-configures"])
@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_every_series_leaves_once_through_the_sdk_otlp_exporter(
    otlp_receiver: OtlpReceiver, tmp_path: Path, temporality: str, configure: bool
) -> None:
    run(tmp_path, otlp(otlp_receiver, temporality, APP_CONFIGURE="1" if configure else "0"))
    points = exported_points(otlp_receiver)
    assert points, "nothing reached the receiver"

    # One provider, the SDK's: one resource, and eddie's series under eddie's scope.
    assert len({point.resource for point in points}) == 1, {point.resource for point in points}
    assert ("service.name", SERVICE) in points[0].resource
    assert {point.scope for point in points if point.metric in EDDIE_NAMES} == {"eddie_otel"}
    # Nothing exported twice: no export request holds two points of one series.
    for export in {point.export for point in points}:
        series = Counter((p.scope, p.metric, p.attributes) for p in points if p.export == export)
        assert [key for key, count in series.items() if count > 1] == [], f"export {export} repeats a series"

    split = of(points, "task.split", agent="a1")
    requests = of(points, "app.requests", route="/")
    executions = of(points, "task.execution", stage="codegen")
    successes = of(points, "task.success", stage="codegen")
    failures = of(points, "task.failure", stage="codegen", reason="ValueError")
    for found in (split, requests, executions, successes, failures):
        assert found, "a series is missing"
    expected = DELTA if temporality == "delta" else CUMULATIVE
    assert {point.temporality for point in (*split, *requests, *executions)} == {expected}

    if temporality == "delta":
        # Every increment arrives once: the points of a series add up to exactly what was recorded.
        assert sum(point.value for point in split) == 1
        assert sum(point.value for point in requests) == REQUESTS
        assert sum(point.value for point in executions) == TASKS
        assert sum(point.value for point in successes) == TASKS - FAILED
        assert sum(point.value for point in failures) == FAILED
    else:
        # One cumulative stream per series (a second reader or provider would start another) ending at the total.
        for found in (split, requests, executions, successes, failures):
            assert len({point.start for point in found}) == 1, (found[0].metric, {point.start for point in found})
        assert split[-1].value == 1
        assert requests[-1].value == REQUESTS
        assert executions[-1].value == TASKS
        assert successes[-1].value == TASKS - FAILED
        assert failures[-1].value == FAILED


def test_disabled_instrumentation_records_nothing_of_eddie(otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    run(tmp_path, otlp(otlp_receiver, "delta", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="eddie_otel"))
    points = exported_points(otlp_receiver)
    # The app's own counter still leaves, exactly; no series of eddie's does.
    assert sum(point.value for point in of(points, "app.requests", route="/")) == REQUESTS
    eddies = {point.metric for point in points if point.metric in EDDIE_NAMES or point.scope == "eddie_otel"}
    assert sorted(eddies) == []


def test_a_bad_setting_is_logged_as_one_line_and_the_app_starts(tmp_path: Path) -> None:
    app = textwrap.dedent(
        """
        import eddie_otel


        @eddie_otel.task(stage="codegen", agent="a1")
        def work(i):
            return i * 10


        print(work(4), flush=True)
        """
    )
    env = environment(OTEL_METRICS_EXPORTER="none", EDDIE_OTEL_MAX_FALLBACK_DEPTH="deep")
    done = subprocess.run(command(tmp_path, app), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["40"]
    # The instrumentor logs the error as one line and returns: the loader goes on with the other instrumentors.
    first = done.stderr.splitlines()[0]
    assert first.startswith("eddie-otel: "), done.stderr
    assert "EDDIE_OTEL_MAX_FALLBACK_DEPTH" in first
    assert "Instrumenting of eddie_otel failed" not in done.stderr
    assert "Failed to auto initialize" not in done.stderr


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples named `name` in a Prometheus text exposition, with their labels."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def without_scope(labels: dict[str, str]) -> dict[str, str]:
    """The labels but the `otel_scope_*` ones the SDK's Prometheus exporter may add."""
    return {key: value for key, value in labels.items() if not key.startswith("otel_scope_")}


@pytest.mark.parametrize("configure", [True, False], ids=["app-configures", "entry-point-configures"])
def test_the_sdk_prometheus_exporter_serves_eddie_series_once(tmp_path: Path, configure: bool) -> None:
    port = free_port()
    env = environment(
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        APP_CONFIGURE="1" if configure else "0",
        APP_WAIT="1",
    )
    process = subprocess.Popen(
        command(tmp_path),
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    text = ""
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                text = response.read().decode()
    finally:
        _, stderr = process.communicate(input="\n", timeout=30)
    # configure() borrowed the provider: no port of its own, so no clash with the SDK's exporter.
    assert line, f"the app ended before recording: {stderr}"
    assert json.loads(line) == {"results": RESULTS, "split": True}
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "eddie-otel:" not in stderr, stderr

    def values(name: str, **labels: str) -> list[float]:
        return [value for found, value in samples(text, name) if without_scope(found) == labels]

    assert values("task_split_total", agent="a1") == [1], samples(text, "task_split_total")
    assert values("task_split_chunks_total", agent="a1") == [3]
    assert values("task_execution_seconds_count", stage="codegen") == [TASKS]
    assert values("task_failure_total", stage="codegen", reason="ValueError") == [FAILED]
    assert values("app_requests_total", route="/") == [REQUESTS], samples(text, "app_requests_total")
