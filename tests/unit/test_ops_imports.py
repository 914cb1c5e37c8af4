"""The ops modules import one another one way only: no module imports, even lazily inside a function,
a module that (through others) imports it back, and each imports cleanly whichever comes first."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "eddie_otel" / "ops"
PACKAGE = "eddie_otel.ops"
# The modules that used to import one another in a circle (alerts → links → dashboard → alerts' thresholds),
# now thresholds ← dashboard ← links ← alerts.
FORMER_CIRCLE = (f"{PACKAGE}.thresholds", f"{PACKAGE}.dashboard", f"{PACKAGE}.links", f"{PACKAGE}.alerts")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(path): path for path in sorted(OPS.rglob("*.py"))}


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every ops module `module` imports, at module level or inside a function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A relative import: resolve it against the importing module's package.
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # `from package import name` imports the submodule `name` when there is one.
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source for alias in node.names
            ]
        else:
            continue
        yield from (name for name in names if name in MODULES and name != module)


def _graph() -> dict[str, set[str]]:
    return {
        module: set(_imported(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py"))
        for module, path in MODULES.items()
    }


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = list(graph[start])
    while stack:
        module = stack.pop()
        if module not in seen:
            seen.add(module)
            stack.extend(graph[module])
    return seen


def test_the_module_list_holds_the_ops_modules() -> None:
    assert set(FORMER_CIRCLE) <= set(MODULES)
    assert f"{PACKAGE}.dashboard.render" in MODULES


def test_the_import_graph_sees_function_level_and_package_imports() -> None:
    source = "from eddie_otel.ops import anomaly\n\ndef f():\n    from eddie_otel.ops.dashboard import UID\n"
    assert set(_imported(ast.parse(source), f"{PACKAGE}.links", False)) == {
        f"{PACKAGE}.anomaly",
        f"{PACKAGE}.dashboard",
    }


def test_no_ops_module_imports_a_module_that_imports_it_back() -> None:
    graph = _graph()
    circles = {
        module: sorted(_reaches(graph, module) & {m for m in graph if module in _reaches(graph, m)}) for module in graph
    }
    assert {module: others for module, others in circles.items() if others} == {}


def test_the_former_circle_now_goes_one_way() -> None:
    graph = _graph()
    thresholds, dashboard, links, alerts = FORMER_CIRCLE
    assert _reaches(graph, thresholds).isdisjoint(FORMER_CIRCLE)
    assert dashboard not in _reaches(graph, dashboard)
    assert thresholds in _reaches(graph, dashboard)
    assert {dashboard, thresholds} <= _reaches(graph, links)
    assert links in graph[alerts]
    assert alerts not in _reaches(graph, links) | _reaches(graph, dashboard)


def _imports_cleanly(modules: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """Import `modules` in this order in a fresh interpreter; the error output, empty when it worked."""
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run(
        [sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    return modules, "" if result.returncode == 0 else result.stderr


@pytest.mark.parametrize(
    "orders",
    [
        pytest.param([(module,) for module in MODULES], id="each ops module first"),
        pytest.param(list(itertools.permutations(FORMER_CIRCLE)), id="the former circle in every order"),
    ],
)
def test_modules_import_in_a_fresh_interpreter(orders: list[tuple[str, ...]]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {modules: error for modules, error in pool.map(_imports_cleanly, orders) if error}
    assert failures == {}
