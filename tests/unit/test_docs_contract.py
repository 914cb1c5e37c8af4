"""docs/contract.md says what the code says: commands, variables, events, metrics and alerts."""

from __future__ import annotations

import re
from pathlib import Path

from eddie_otel.catalogue import METRICS, SELF_METRICS
from tests.unit import test_readme as readme

CONTRACT = Path(__file__).parents[2] / "docs" / "contract.md"


def contract() -> str:
    return CONTRACT.read_text(encoding="utf-8")


def test_contract_commands_and_options_exist_in_the_cli() -> None:
    _, commands = readme.parsers()
    rows = re.findall(r"^\| `([a-z-]+)((?: [^`]*)?)` \| ", readme.section(contract(), "## 5. Commands"), re.M)
    assert {name for name, _ in rows} == set(commands)
    for name, usage in rows:
        options = set(re.findall(r"--[a-z][a-z-]*", usage))
        assert options <= readme.options_of(commands[name]), f"{name}: {sorted(options)}"


def test_contract_variables_are_read_by_eddie_otel() -> None:
    readme.check_variables_exist(contract())


def test_contract_configuration_table_lists_every_variable_eddie_otel_reads() -> None:
    table = readme.section(contract(), "## 6. Configuration")
    listed = set(readme.VARIABLE.findall(table))
    assert readme.read_variables() - listed == set()


def test_contract_event_table_is_the_models() -> None:
    table = readme.section(contract(), "## 4. HTTP API").split("| event type | fields |\n|---|---|\n", 1)[1]
    rows = re.findall(r"^\| ([a-z_]+) \| (.+) \|$", table.split("\n\n", 1)[0], re.M)
    shown = {name: tuple(re.findall(r"(?:^|, )([a-z_]+)", re.sub(r"\([^)]*\)", "", fields))) for name, fields in rows}
    assert shown == readme.event_models()


def test_contract_metric_rows_are_the_catalogue() -> None:
    rows = re.findall(r"^\| ([a-z_]+) \| (counter|gauge|histogram) \| ([a-z, —]+) \|", contract(), re.M)
    catalogue = {m.prometheus_name: (m.kind.value, m.labels) for m in METRICS}
    for name, kind, labels in rows:
        assert catalogue.get(name) == (kind, tuple(label for label in labels.split(", ") if label != "—")), name


def test_contract_metric_names_are_in_the_catalogue() -> None:
    readme.check_metric_names(contract())
    for metric in SELF_METRICS:
        assert metric.prometheus_name in contract()


def test_contract_alert_names_are_in_the_rule_file() -> None:
    readme.check_alert_names(contract())
    assert set(readme.alert_rules()) - set(readme.ALERT.findall(contract())) == set()
