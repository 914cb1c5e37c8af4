"""The YAML the generated files are written in: lists indented under their key, keys in the order given."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["dump"]


class _Dumper(yaml.SafeDumper):
    """Indents lists under their key, as the Prometheus, Grafana and compose examples do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump(document: Any, header: str = "") -> str:
    """`header` followed by `document` as block YAML: deterministic, unicode kept, no line wrapping."""
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=10_000
    )
    return header + body
