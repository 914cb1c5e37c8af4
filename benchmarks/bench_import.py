"""Import time of eddie_otel, from `python -X importtime -c "import eddie_otel"` in fresh subprocesses.

RUNS subprocesses in a row; the cumulative time of the top-level `eddie_otel` entry of
each run's importtime report is collected and the median printed, with the modules that
cost the most in that run. A further subprocess reports whether `import eddie_otel` alone
pulls in asyncio and the OTLP exporter (neither is needed until used).
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from benchmarks._common import print_command

RUNS = 9
TOP = 8
CHECKED = ("asyncio", "opentelemetry.exporter.otlp")
_CHECK = (
    "import sys, eddie_otel\n"
    f"for name in {CHECKED!r}:\n"
    "    print(name, 'yes' if any(m == name or m.startswith(name + '.') for m in sys.modules) else 'no')\n"
)


def _importtime() -> dict[str, tuple[int, int]]:
    """One fresh interpreter's importtime report: module -> (self µs, cumulative µs)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import eddie_otel"],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, tuple[int, int]] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        report.setdefault(name, (int(own), int(cumulative)))
    return report


def main() -> None:
    """Print the median import time of eddie_otel and which heavy modules it imports."""
    print_command("bench_import")
    print(f'each run: {sys.executable} -X importtime -c "import eddie_otel"')
    totals: list[int] = []
    reports = []
    for _ in range(RUNS):
        report = _importtime()
        reports.append(report)
        totals.append(report["eddie_otel"][1])
    median = statistics.median(totals)
    spread = ", ".join(f"{value / 1000:.0f}" for value in totals)
    print(f"import eddie_otel: {median / 1000:.1f} ms cumulative, median of {RUNS} runs (runs, ms: {spread})")
    typical = reports[totals.index(sorted(totals)[len(totals) // 2])]
    print(f"modules with the largest self time in the median run (of {len(typical)} imported):")
    for name, (own, cumulative) in sorted(typical.items(), key=lambda item: -item[1][0])[:TOP]:
        print(f"  {own / 1000:7.1f} ms self {cumulative / 1000:7.1f} ms cumulative  {name.strip()}")
    result = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, check=True)
    print("in sys.modules after `import eddie_otel`:")
    for line in result.stdout.splitlines():
        name, answer = line.split()
        print(f"  {name:32} {answer}")


if __name__ == "__main__":
    main()
