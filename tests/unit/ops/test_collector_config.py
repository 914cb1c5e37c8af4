"""collector-config.yaml, checked structurally.

A stand-in for the Collector: the contrib Collector (otelcol-contrib) is a Go binary
that cannot be installed here, so this test applies the rules the Collector applies
when it loads a config — every component a pipeline names is defined, every defined
component is used, each type (the part of an id before `/`) is one the distribution
ships — plus this project's own: memory_limiter first, endpoints from `${env:...}`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from eddie_otel.ops.assets import COLLECTOR_CONFIG

ROOT = Path(__file__).resolve().parents[3]

# Component types of the otelcol-contrib distribution, from its manifest
# (open-telemetry/opentelemetry-collector-releases, distributions/otelcol-contrib/manifest.yaml):
# the ones a metrics setup like this one may use, by the type name a config refers to.
CONTRIB_TYPES: dict[str, frozenset[str]] = {
    "receivers": frozenset(
        {
            "otlp",
            "prometheus",
            "hostmetrics",
            "docker_stats",
            "filelog",
            "statsd",
            "influxdb",
            "carbon",
            "collectd",
            "kafka",
            "k8s_cluster",
            "kubeletstats",
            "nop",
        }
    ),
    "processors": frozenset(
        {
            "memory_limiter",
            "batch",
            "attributes",
            "resource",
            "resourcedetection",
            "filter",
            "transform",
            "metricstransform",
            "cumulativetodelta",
            "deltatocumulative",
            "groupbyattrs",
            "k8sattributes",
            "interval",
        }
    ),
    "exporters": frozenset(
        {
            "debug",
            "nop",
            "otlp",
            "otlphttp",
            "prometheus",
            "prometheusremotewrite",
            "file",
            "kafka",
            "loadbalancing",
            "influxdb",
            "googlemanagedprometheus",
            "awsemf",
            "datadog",
        }
    ),
    "extensions": frozenset(
        {"health_check", "pprof", "zpages", "basicauth", "bearertokenauth", "oauth2client", "file_storage"}
    ),
    "connectors": frozenset({"forward", "count", "spanmetrics", "routing"}),
}
KINDS = ("receivers", "processors", "exporters", "connectors")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The shipped collector-config.yaml, parsed."""
    document: dict[str, Any] = yaml.safe_load((ROOT / COLLECTOR_CONFIG).read_text(encoding="utf-8"))
    return document


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_every_component_used_in_a_pipeline_is_defined(config: dict[str, Any]) -> None:
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config.get(kind, {}), f"pipeline {name} uses undefined {kind} {component}"
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"], extension


def test_every_defined_component_is_used(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"].values()
    for kind in KINDS:
        used = {component for pipeline in pipelines for component in pipeline.get(kind, [])}
        assert set(config.get(kind, {})) == used, kind
    assert set(config["extensions"]) == set(config["service"]["extensions"])


def test_every_type_is_shipped_by_the_contrib_distribution(config: dict[str, Any]) -> None:
    for kind in (*KINDS, "extensions"):
        for component in config.get(kind, {}):
            assert _type(component) in CONTRIB_TYPES[kind], f"{kind}: {component}"


def test_memory_limiter_comes_first_then_batch(config: dict[str, Any]) -> None:
    for name, pipeline in config["service"]["pipelines"].items():
        processors = [_type(processor) for processor in pipeline["processors"]]
        assert processors[0] == "memory_limiter", name
        assert processors[-1] == "batch", name


def test_metrics_fan_in_and_out_and_traces_go_to_a_trace_backend(config: dict[str, Any]) -> None:
    assert config["service"]["pipelines"] == {
        "metrics": {
            "receivers": ["prometheus", "otlp"],
            "processors": ["memory_limiter", "batch"],
            "exporters": ["prometheus", "prometheusremotewrite", "otlp", "debug"],
        },
        "traces": {
            "receivers": ["otlp"],
            "processors": ["memory_limiter", "batch"],
            "exporters": ["otlp/traces"],
        },
    }
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert config["extensions"]["health_check"]["endpoint"].startswith("${env:")


def test_prometheus_receiver_scrapes_the_eddie_endpoint(config: dict[str, Any]) -> None:
    [job] = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert job["metrics_path"] == "/metrics/prometheus"
    assert job["static_configs"] == [{"targets": ["${env:EDDIE_OTELCOL_SCRAPE_TARGET:-localhost:8503}"]}]


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return [node] if isinstance(node, str) else []


def test_endpoints_come_from_env_references_with_defaults(config: dict[str, Any]) -> None:
    endpoints = [
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        *(exporter["endpoint"] for name, exporter in config["exporters"].items() if name != "debug"),
        config["extensions"]["health_check"]["endpoint"],
    ]
    reference = re.compile(r"\$\{env:EDDIE_OTELCOL_[A-Z_]+:-[^}]+\}")
    for endpoint in endpoints:
        assert reference.fullmatch(endpoint), endpoint
    # The bare $VAR and ${VAR} forms are deprecated in the Collector: every reference names its provider.
    for text in _strings(config):
        for match in re.finditer(r"\$", text):
            assert text[match.start() :].startswith("${env:"), text


def test_every_env_variable_is_documented_in_the_header() -> None:
    text = (ROOT / COLLECTOR_CONFIG).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    header = "".join(line for line in lines if line.startswith("#"))
    body = "".join(line for line in lines if not line.lstrip().startswith("#"))
    names = set(re.findall(r"\$\{env:([A-Z_]+)", body))
    assert len(names) == 10
    for name in names:
        assert f"#   {name} " in header, name
