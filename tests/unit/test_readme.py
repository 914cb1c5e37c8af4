"""The README's metric table says what the catalogue says."""

from __future__ import annotations

import re
from pathlib import Path

from eddie_otel.catalogue import METRICS

README = Path(__file__).parents[2] / "README.md"


def test_readme_metric_table_matches_the_catalogue() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \| ([a-z, —]+) \|", README.read_text(), re.M)
    table = {name: (kind, tuple(label for label in labels.split(", ") if label != "—")) for name, kind, labels in rows}
    assert table == {m.prometheus_name: (m.kind.value, m.labels) for m in METRICS}


def test_readme_quick_start_is_the_two_make_commands() -> None:
    quick_start = README.read_text().split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", quick_start, re.M)
    assert commands == ["make demo", "make test"]
