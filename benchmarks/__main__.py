"""Run the benchmarks in turn: `python -m benchmarks [name ...]`; the soak only by name."""

from __future__ import annotations

import argparse
import importlib
import sys

# Run by default, each bounded to a few minutes.
BENCHMARKS = ("bench_decorator", "bench_features", "bench_events", "bench_scrape", "bench_import", "bench_fleet")
# Run only when named (long); `python -m benchmarks soak --help` for its options.
OPT_IN = ("soak",)


def main() -> None:
    if sys.argv[1:2] == ["soak"]:
        print("== soak", flush=True)
        importlib.import_module("benchmarks.soak").main(sys.argv[2:])
        return
    choices = (*BENCHMARKS, *OPT_IN)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run the eddie-otel benchmarks.")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(choices)} (default: {', '.join(BENCHMARKS)}; "
        "soak only by name, with its options after it: soak --minutes N)",
    )
    names = parser.parse_args().names or list(BENCHMARKS)
    unknown = sorted(set(names) - set(choices))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(choices)}")
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
        print(flush=True)


main()
