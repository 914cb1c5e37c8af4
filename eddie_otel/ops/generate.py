"""Regenerate the committed dashboard and alert rules from the catalogue: `python -m eddie_otel.ops.generate`.

`--check` writes nothing and exits 1 listing the files that differ from a fresh
generation (what CI runs); without it the files are rewritten in place.
`--runbook-base-url` and `--grafana-base-url` set where the alerts' runbook_url
and dashboard_url annotations point (the committed files use the defaults: the
runbooks' path in the source tree, docs/runbooks.md, and the Grafana of `eddie-otel stack`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from eddie_otel.ops.alerts import THRESHOLDS, render_rules
from eddie_otel.ops.assets import ALERT_RULES, DASHBOARD
from eddie_otel.ops.dashboard import render_dashboard
from eddie_otel.ops.links import DEFAULT_GRAFANA_BASE_URL, DEFAULT_RUNBOOK_BASE_URL, Links

__all__ = ["GENERATED", "main", "stale_files", "write_files"]

# Repository-relative path → the function that renders its content with the given links.
GENERATED: dict[str, Callable[[Links], str]] = {
    DASHBOARD: lambda links: render_dashboard(),
    ALERT_RULES: lambda links: render_rules(THRESHOLDS, links),
}


def _checkout_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "dashboards").is_dir() else None


def stale_files(root: Path, links: Links | None = None) -> list[str]:
    """The generated files under `root` that are missing or differ from a fresh generation."""
    links = links or Links()
    stale = []
    for name, render in GENERATED.items():
        path = root / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(links):
            stale.append(name)
    return stale


def write_files(root: Path, links: Links | None = None) -> list[str]:
    """Write every generated file under `root`; returns the ones whose content changed."""
    links = links or Links()
    changed = stale_files(root, links)
    for name in changed:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(GENERATED[name](links), encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m eddie_otel.ops.generate",
        description="Regenerate the Grafana dashboard and the Prometheus alert rules from the metric catalogue.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the files that differ from a fresh generation",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root holding dashboards/ (default: the checkout this package is in)",
    )
    parser.add_argument(
        "--runbook-base-url",
        metavar="URL",
        default=DEFAULT_RUNBOOK_BASE_URL,
        help=(
            "where your copy of docs/runbooks.md is served; runbook_url is URL#alertname. Give it for production: "
            f"the default, {DEFAULT_RUNBOOK_BASE_URL}, is the file's path in the eddie-otel source, not a link"
        ),
    )
    parser.add_argument(
        "--grafana-base-url",
        metavar="URL",
        default=DEFAULT_GRAFANA_BASE_URL,
        help=f"Grafana base URL of the dashboard_url annotations (default: {DEFAULT_GRAFANA_BASE_URL})",
    )
    args = parser.parse_args(argv)
    links = Links(args.runbook_base_url, args.grafana_base_url)
    root: Path | None = args.root or _checkout_root()
    if root is None:
        parser.error("not running from a source checkout: pass --root, the directory that holds dashboards/")
    if not root.is_dir():
        parser.error(f"--root: {root} is not a directory")
    if args.check:
        stale = stale_files(root, links)
        for name in stale:
            print(f"out of date: {name} (run `make generate`)", file=sys.stderr)
        return 1 if stale else 0
    for name in write_files(root, links):
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
