"""The README's checkable claims say what the code says.

Every `eddie-otel` command and option it shows exists in the CLI parser; every
environment variable it names is one eddie-otel reads (or an SDK variable listed
below with its reason), and every variable eddie-otel reads is in its configuration
table; its event types and fields are the event models'; its metric names and
metric table are the catalogue's; its alert names and the threshold table are the
rule file's; its internal links land on a heading.

The helpers take the document's text, so that docs/contract.md is checked with them
too (tests/unit/test_docs_contract.py).
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import opentelemetry.sdk.environment_variables as sdk_variables
import yaml
from typing_extensions import get_type_hints, is_typeddict

from eddie_otel import environment
from eddie_otel.catalogue import METRICS, SELF_METRICS, Kind
from eddie_otel.cli import build_parser

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
ALERT_RULES = ROOT / "dashboards" / "prometheus-alerts.yml"
COLLECTOR_CONFIG = ROOT / "collector-config.yaml"

# Variables the README may name that eddie-otel itself does not read, each with the reason.
SDK_VARIABLES = {
    # Read by the OpenTelemetry SDK's OTLP exporters (the `otlp` exporter eddie builds, or a borrowed provider's).
    "OTEL_EXPORTER_OTLP_ENDPOINT": "the OTLP exporter's endpoint",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "the OTLP metric exporter's endpoint",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "the OTLP metric exporter's temporality",
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "the OTLP metric exporter's histogram aggregation",
}
OTHER_VARIABLES = {
    # Read by the test suite (tests/conftest.py), described under Development.
    "EDDIE_OTEL_REQUIRE_PROMETHEUS": ROOT / "tests" / "conftest.py",
}
# Options the README shows for commands other than eddie-otel's, with the command they belong to.
FOREIGN_OPTIONS = {
    "--config.file": "prometheus",
    "--storage.tsdb.retention.time": "prometheus",
    "--storage.tsdb.retention.size": "prometheus",
    "--enable-feature": "prometheus",
    "--config": "otelcol-contrib",
    "--service_name": "opentelemetry-instrument",
    "--metrics_exporter": "opentelemetry-instrument",
    "--preload": "gunicorn",
    "--wheel": "python -m build",
    "--build": "docker compose up",
    "--scale": "docker compose up",
    "--quiet": "pip",
    "--strict": "mypy",
    "--runbook-base-url": "python -m eddie_otel.ops.generate",
    "--grafana-base-url": "python -m eddie_otel.ops.generate",
    "--check": "python -m eddie_otel.ops.generate",
    "--clients": "python -m tests.support.service_attack",
    "--minutes": "python -m benchmarks soak",
    "--cpus": "docker run",
    "--cpu-quota": "docker run",
    "--cpu-period": "docker run",
    "--memory": "docker run",
    "--name": "docker run",
    "--network": "docker run",
}
# Words ending like a Prometheus name that are not one: event fields, JSON keys, other libraries' metrics.
NOT_METRICS = {
    "uptime_seconds": "a key of the health body",
    "latency_p99_seconds": "an indicator of the summary",
    "http_server_request_duration_seconds": "the FastAPI instrumentation's metric",
}


def read(path: Path | None = None) -> str:
    return (README if path is None else path).read_text(encoding="utf-8")


def code_spans(text: str) -> list[str]:
    """The text of every fenced code block (continuation lines joined) and every inline code span."""
    spans = []
    fenced = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
    for block in fenced.findall(text):
        spans.extend(block.replace("\\\n", " ").splitlines())
    prose = fenced.sub("", text)
    spans.extend(re.findall(r"`([^`\n]+)`", prose))
    return spans


def section(text: str, heading: str) -> str:
    """The text under `heading` (a whole heading line), up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    body = text.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"^#{{1,{level}}} ", body, maxsplit=1, flags=re.M)[0]


# ---------------------------------------------------------------- commands and options


def parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The eddie-otel parser and its sub-command parsers by name."""
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, dict(commands.choices)


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return set(parser._option_string_actions)


COMMAND_LINE = re.compile(r"(?:(?<!\S)eddie-otel|python -m eddie_otel)((?:\s+[^\s#|&;`]+)+)")


def invocations(text: str) -> list[tuple[str, list[str]]]:
    """Each `eddie-otel ...` command line in code: its first word and the options given to it."""
    found = []
    for span in code_spans(text):
        for match in COMMAND_LINE.finditer(re.sub(r"(?:^|\s)#.*", "", span)):
            words = match.group(1).split()
            found.append((words[0], [w.split("=")[0] for w in words if w.startswith("--")]))
    return found


def check_commands(text: str) -> None:
    top, commands = parsers()
    shown = invocations(text)
    assert shown, "no eddie-otel command found"
    for first, options in shown:
        if first.startswith("-"):
            assert set(options) <= options_of(top), f"eddie-otel {' '.join(options)}"
            continue
        assert first in commands, f"eddie-otel {first} is not a command"
        unknown = set(options) - options_of(commands[first])
        assert not unknown, f"eddie-otel {first} has no option {sorted(unknown)}"
    every = set().union(options_of(top), *(options_of(p) for p in commands.values()))
    for span in code_spans(text):
        for option in re.findall(r"(?<![\w-])--[a-z][\w.-]*[a-z]", span):
            assert option in every or option in FOREIGN_OPTIONS, f"{option} is no option of eddie-otel"


def test_readme_commands_and_options_exist_in_the_cli() -> None:
    check_commands(read())


# ---------------------------------------------------------------- environment variables

VARIABLE = re.compile(r"\b(?:EDDIE_OTEL_[A-Z0-9_]*|OTEL_[A-Z0-9_]*|GRAFANA_API_KEY)\b\*?")


def read_variables() -> set[str]:
    """Every variable environment.py names: the ones eddie-otel reads."""
    return {value for name, value in vars(environment).items() if name.isupper() and isinstance(value, str)}


def check_variables_exist(text: str) -> None:
    known = read_variables() | set(SDK_VARIABLES) | set(OTHER_VARIABLES)
    assert all(hasattr(sdk_variables, name) for name in SDK_VARIABLES)
    assert all(name in path.read_text(encoding="utf-8") for name, path in OTHER_VARIABLES.items())
    for name in set(VARIABLE.findall(text)):
        if name.endswith(("_", "_*")):  # a family of variables: OTEL_EXPORTER_OTLP_*, EDDIE_OTEL_
            assert any(k.startswith(name.rstrip("*")) for k in known), f"no variable matches {name}"
        else:
            assert name in known, f"{name} is read nowhere (not in eddie_otel/environment.py)"
    collector = COLLECTOR_CONFIG.read_text(encoding="utf-8")
    for name in set(re.findall(r"\bEDDIE_OTELCOL_[A-Z0-9_]+\b", text)):
        assert name in collector, f"{name} is not in collector-config.yaml"


def test_readme_variables_are_read_by_eddie_otel() -> None:
    check_variables_exist(read())


def test_readme_configuration_table_lists_every_variable_eddie_otel_reads() -> None:
    table = section(read(), "### Configuration")
    listed = {
        name for row in table.splitlines() if row.startswith("| `") for name in VARIABLE.findall(row.split(" | ")[0])
    }
    assert read_variables() - listed == set()


# ---------------------------------------------------------------- events


def event_models() -> dict[str, tuple[str, ...]]:
    from eddie_otel.service.events import EVENT_MODELS

    return {name: tuple(f for f in model.model_fields if f != "type") for name, model in EVENT_MODELS.items()}


def test_readme_event_types_and_fields_are_the_models() -> None:
    events = section(read(), "### Events")
    listing = " ".join(events.split("\n\n", 1)[0].split())
    assert listing.startswith("Event types:")
    shown = {name: tuple(fields.split(", ")) for name, fields in re.findall(r"`([a-z_]+)` \(([a-z_, ]+)\)", listing)}
    assert shown == event_models()


# ---------------------------------------------------------------- metrics

METRIC_WORD = re.compile(
    r"\b(?:eddie_otel_[a-z0-9_]+|[a-z][a-z0-9_]*_(?:total|seconds|bytes|limit|bucket|count|sum|info)|agent_active_tasks)\b"
)


def metric_names() -> set[str]:
    names = {"target_info"}
    for metric in (*METRICS, *SELF_METRICS):
        names.add(metric.prometheus_name)
        if metric.kind is Kind.HISTOGRAM:
            names |= {metric.prometheus_name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def summary_keys() -> set[str]:
    """Every key of the summary's JSON (its TypedDicts'), which the README names beside metrics."""
    # The module itself: `eddie_otel.summary` is also the name of the function that builds one.
    module = importlib.import_module("eddie_otel.summary")
    shapes = [value for value in vars(module).values() if is_typeddict(value)]
    assert shapes, "the summary's shapes are TypedDicts of eddie_otel.summary"
    return {key for shape in shapes for key in get_type_hints(shape)}


def check_metric_names(text: str) -> None:
    fields = {field for model in event_models().values() for field in model} | summary_keys()
    for span in code_spans(text) + re.findall(r"^\| ?([a-z_]+) \|", text, re.M):
        for word in METRIC_WORD.findall(span):
            if word in fields or word in NOT_METRICS:
                continue
            assert word in metric_names(), f"{word} is not a metric of the catalogue"


def test_readme_metric_names_are_in_the_catalogue() -> None:
    check_metric_names(read())


def test_readme_metric_table_matches_the_catalogue() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \| ([a-z, —]+) \|", read(), re.M)
    table = {name: (kind, tuple(label for label in labels.split(", ") if label != "—")) for name, kind, labels in rows}
    assert table == {m.prometheus_name: (m.kind.value, m.labels) for m in METRICS}


# ---------------------------------------------------------------- alerts


def alert_rules() -> dict[str, list[dict[str, object]]]:
    rules: dict[str, list[dict[str, object]]] = {}
    for group in yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rules.setdefault(rule["alert"], []).append(rule)
    return rules


# An alert's name: Eddie and a capitalised word, but not eddie-otel's own classes (EddieOtelError, ...).
ALERT = re.compile(r"\bEddie(?!Otel)[A-Z][A-Za-z0-9]+\b")


def check_alert_names(text: str) -> None:
    names = set(ALERT.findall(text))
    assert names, "no alert named"
    assert names - set(alert_rules()) == set()


def test_readme_alert_names_are_in_the_rule_file() -> None:
    check_alert_names(read())
    assert set(alert_rules()) - set(ALERT.findall(read())) == set()


def test_readme_threshold_alert_table_matches_the_rule_file() -> None:
    rows = re.findall(r"^\s*\| (Eddie\w+) \| [^|]+ \| ([^|]+) \| (\w+) \|$", read(), re.M)
    assert len(rows) >= 7
    rules = alert_rules()
    for name, wait, severity in rows:
        (rule,) = rules[name]
        shown = "0s" if wait.strip() == "—" else wait.strip()
        assert (shown, severity) == (rule["for"], rule["labels"]["severity"])  # type: ignore[index]


# ---------------------------------------------------------------- structure


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_internal_links_land_on_a_heading() -> None:
    text = read()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    anchors = {anchor(line.lstrip("#")) for line in prose.splitlines() if re.match(r"#{1,6} ", line)}
    assert set(re.findall(r"\]\(#([^)]+)\)", text)) - anchors == set()


def test_readme_quick_start_is_the_two_make_commands() -> None:
    quick_start = read().split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", quick_start, re.M)
    assert commands == ["make demo", "make test"]


def test_readme_says_no_release_is_on_pypi() -> None:
    install = section(read(), "## Instrument your agents")
    assert "No release of eddie-otel is on PyPI" in install
    assert not re.search(r"^pip install eddie-otel\b", install, re.M)
