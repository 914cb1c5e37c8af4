"""Run every benchmark in turn: `python -m benchmarks [name ...]`."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("bench_decorator", "bench_events")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run the eddie-otel benchmarks.")
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)"
    )
    names = parser.parse_args().names or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
        print(flush=True)


main()
