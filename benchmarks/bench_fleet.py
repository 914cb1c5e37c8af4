"""A fleet of FLEET agent processes recording at full speed with discovery on, against one process alone.

Each agent is a fresh interpreter (`sys.executable -c`) that calls
`eddie_otel.configure(port=0, discovery_dir=DIR)` on loopback, so it serves on a free port and
announces it in DIR. The parent finds each process's discovery file (matched by its pid label)
and polls its /metrics/prometheus: the time from `Popen` to the first HTTP 200 is the process's
time to first scrape. Once every process has answered, all start together on a shared clock
and run DURATION seconds of SLICE-long slices, alternating a bare loop of a trivial function
with the same function under `@eddie_otel.task(stage="s", agent=...)` (ABBA order, so neither
kind always goes first). Slices are aligned to the shared clock, so the whole fleet is bare or
recording at the same moments. Each slice is timed in wall time and in the process's CPU time.

Per process: events/s is its decorated calls over its decorated wall seconds; its overhead per
call is the median decorated ns/call minus the median bare ns/call, in wall and in CPU time
(slices the process never ran in are left out of those medians, and counted).
The fleet's events/s is the sum over processes. "Alone" is the same process with no other
agent running, measured before and after the fleet (its slices pooled); the ratio fleet/alone
of the per-call overhead is printed for wall and CPU time. With more processes than cores,
wall-time numbers mostly show the processes sharing the CPU; CPU time shows eddie's cost.

Correctness: after the loops, every process's exposition is scraped, and the sum of its
task_success_total{stage="s"} must equal the sum of the decorated calls the processes counted.
Every process and the temporary directory are removed on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks._common import print_command

FLEET = 16
DURATION = 10.0
SLICE = 0.5
CHECK_EVERY = 200  # calls between two looks at the clock
POLL = 0.01  # seconds between two polls of the discovery directory or of an endpoint
START_TIMEOUT = 90.0
STAGE = "s"
PID_LABEL = "__meta_eddie_pid"
ROOT = Path(__file__).resolve().parent.parent
CHILD = "from benchmarks.bench_fleet import _agent; _agent()"
COUNTER = f'task_success_total{{stage="{STAGE}"}}'


# ------------------------------------------------------------------ the agent process


def _agent() -> None:
    """One agent: serve with discovery on, wait for "go <start>", run the slices, report, wait for EOF."""
    import eddie_otel

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its agents itself
    directory, name, duration, piece = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    eddie_otel.configure(port=0, host="127.0.0.1", exporters="prometheus", discovery_dir=directory, environ={})

    def work() -> None:
        return None

    recorded = eddie_otel.task(stage=STAGE, agent=name)(work)
    line = sys.stdin.readline()
    if not line.startswith("go "):
        eddie_otel.shutdown()
        return
    start = float(line.split()[1])
    slices: list[dict[str, object]] = []
    calls_recorded = 0
    index = 0
    while True:
        begin = start + index * piece
        end = begin + piece
        if end > start + duration + 1e-9:
            break
        decorated = (index % 4) in (1, 2)  # bare, decorated, decorated, bare, ...
        function = recorded if decorated else work
        while time.time() < begin:
            pass
        wall, cpu, calls = time.perf_counter(), time.process_time(), 0
        while time.time() < end:
            for _ in range(CHECK_EVERY):
                function()
            calls += CHECK_EVERY
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        slices.append({"decorated": decorated, "calls": calls, "wall": wall, "cpu": cpu})
        if decorated:
            calls_recorded += calls
        index += 1
    print(json.dumps({"slices": slices, "recorded": calls_recorded}), flush=True)
    sys.stdin.read()  # until the parent closes stdin, after its last scrape
    eddie_otel.shutdown()


# ------------------------------------------------------------------ the parent


class Agent:
    """One agent process, its endpoint once found, and its time to first scrape."""

    def __init__(self, directory: Path, number: int) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), f"a{number}", str(DURATION), str(SLICE)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.target: str | None = None
        self.first_scrape: float | None = None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _get(target: str) -> str | None:
    """The body of a 200 from target's /metrics/prometheus, else None."""
    try:
        with urllib.request.urlopen(f"http://{target}/metrics/prometheus", timeout=5) as response:
            return response.read().decode() if response.status == 200 else None
    except OSError:
        return None


def _announced(directory: Path) -> dict[int, str]:
    """pid -> host:port of every discovery file in directory right now."""
    found: dict[int, str] = {}
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            group = json.loads(path.read_text())[0]
            found[int(group["labels"][PID_LABEL])] = group["targets"][0]
    return found


def _watch(agent: Agent, directory: Path, deadline: float) -> None:
    """Poll for agent's discovery file, then its endpoint, until the first 200 (or the deadline)."""
    while time.perf_counter() < deadline and agent.process.poll() is None:
        if agent.target is None:
            agent.target = _announced(directory).get(agent.process.pid)
        if agent.target is not None and _get(agent.target) is not None:
            agent.first_scrape = time.perf_counter() - agent.started
            return
        time.sleep(POLL)


def _run(count: int) -> list[dict[str, object]]:
    """Start `count` agents, time their first scrapes, run the slices, check the counters, stop them."""
    agents: list[Agent] = []
    with tempfile.TemporaryDirectory(prefix="eddie-fleet-") as name:
        directory = Path(name)
        try:
            watchers = []
            deadline = time.perf_counter() + START_TIMEOUT
            for number in range(count):
                agent = Agent(directory, number)
                agents.append(agent)
                watcher = threading.Thread(target=_watch, args=(agent, directory, deadline), daemon=True)
                watcher.start()
                watchers.append(watcher)
            for watcher in watchers:
                watcher.join()
            missing = [agent.process.pid for agent in agents if agent.first_scrape is None]
            if missing:
                raise RuntimeError(f"no successful scrape within {START_TIMEOUT:.0f} s from pids {missing}")
            start = time.time() + 0.5
            for agent in agents:
                assert agent.process.stdin is not None
                agent.process.stdin.write(f"go {start}\n")
                agent.process.stdin.flush()
            results: list[dict[str, object]] = []
            for agent in agents:
                assert agent.process.stdout is not None
                line = agent.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"agent pid {agent.process.pid} exited with {agent.process.wait()}")
                result = json.loads(line)
                result["first_scrape"] = agent.first_scrape
                results.append(result)
            exposed = 0.0
            for agent, result in zip(agents, results, strict=True):
                assert agent.target is not None
                body = _get(agent.target) or ""
                value = sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(COUNTER + " "))
                result["exposed"] = value
                exposed += value
            for agent in agents:
                agent.stop()
            results[0]["left"] = sorted(path.name for path in directory.glob("*.json"))
            return results
        finally:
            for agent in agents:
                if agent.process.poll() is None:
                    agent.process.kill()
                    agent.process.wait()


# ------------------------------------------------------------------ the report


def _medians(slices: list[dict[str, float]], decorated: bool) -> tuple[float, float]:
    """Median wall and CPU ns per call over the slices of one kind."""
    # A slice in which the process never got the CPU before its end has no calls to divide by.
    chosen = [piece for piece in slices if bool(piece["decorated"]) == decorated and piece["calls"]]
    wall = statistics.median(piece["wall"] / piece["calls"] * 1e9 for piece in chosen)
    cpu = statistics.median(piece["cpu"] / piece["calls"] * 1e9 for piece in chosen)
    return wall, cpu


def _summary(slices: list[dict[str, float]]) -> dict[str, float]:
    bare_wall, bare_cpu = _medians(slices, False)
    decorated_wall, decorated_cpu = _medians(slices, True)
    recording = [piece for piece in slices if piece["decorated"]]
    return {
        "events_per_s": sum(piece["calls"] for piece in recording) / sum(piece["wall"] for piece in recording),
        "bare_wall": bare_wall,
        "bare_cpu": bare_cpu,
        "decorated_wall": decorated_wall,
        "decorated_cpu": decorated_cpu,
        "overhead_wall": decorated_wall - bare_wall,
        "overhead_cpu": decorated_cpu - bare_cpu,
        "cpu_share": sum(piece["cpu"] for piece in slices) / sum(piece["wall"] for piece in slices),
    }


def _check(title: str, results: list[dict[str, object]]) -> bool:
    counted = sum(int(result["recorded"]) for result in results)  # type: ignore[call-overload]
    exposed = sum(float(result["exposed"]) for result in results)  # type: ignore[arg-type]
    left = results[0]["left"]
    ok = exposed == counted
    print(
        f"  {title}: Σ {COUNTER} over {len(results)} expositions = {exposed:.0f}, "
        f"Σ calls counted = {counted}: {'exact' if ok else 'MISMATCH'}; "
        f"discovery files left after shutdown: {len(left)}"  # type: ignore[arg-type]
    )
    return ok and not left


def _row(label: str, summary: dict[str, float]) -> str:
    return (
        f"  {label:22} {summary['events_per_s']:>12,.0f} {summary['cpu_share']:>6.2f} "
        f"{summary['bare_wall']:>7.0f} {summary['decorated_wall']:>7.0f} {summary['overhead_wall']:>7.0f} "
        f"{summary['bare_cpu']:>7.0f} {summary['decorated_cpu']:>7.0f} {summary['overhead_cpu']:>7.0f}"
    )


def main() -> None:
    """Alone, the fleet, alone again; print rates, overheads, first-scrape times and the counter check."""
    print_command("bench_fleet")
    # A SIGTERM unwinds like Ctrl-C, so the agents and the temporary directory go too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    cores = os.cpu_count() or 1
    print(
        f"{FLEET} agents vs 1 alone; {DURATION:.0f} s each of {SLICE} s slices, bare/decorated ABBA "
        f"on a shared clock; {cores} CPU cores; loopback; discovery on"
    )
    alone_before = _run(1)
    fleet = _run(FLEET)
    alone_after = _run(1)
    alone_runs = alone_before + alone_after
    alone = _summary([piece for run in alone_runs for piece in run["slices"]])  # type: ignore[attr-defined]
    per_process = [_summary(result["slices"]) for result in fleet]  # type: ignore[arg-type]

    print("per process (ns/call are medians over slices; events/s while recording)")
    print(
        f"  {'':22} {'events/s':>12} {'cpu':>6} {'bare':>7} {'task':>7} {'over':>7} {'bare':>7} {'task':>7} {'over':>7}"
    )
    print(f"  {'':22} {'':>12} {'share':>6} {'--- wall ns/call ---':>23} {'--- CPU ns/call ----':>23}")
    print(_row("alone (2 runs pooled)", alone))
    for number, summary in enumerate(per_process):
        print(_row(f"fleet a{number}", summary))
    starved = sum(1 for result in fleet for piece in result["slices"] if not piece["calls"])  # type: ignore[attr-defined]
    typical = {name: statistics.median(summary[name] for summary in per_process) for name in per_process[0]}
    print(_row("fleet, median process", typical))
    total = sum(summary["events_per_s"] for summary in per_process)
    print(
        f"fleet events/s: {total:,.0f} in total ({FLEET} processes recording at once), "
        f"{total / FLEET:,.0f} per process; alone: {alone['events_per_s']:,.0f}; "
        f"fleet total / alone = {total / alone['events_per_s']:.2f}x"
    )
    print(
        f"overhead per call, fleet median / alone: wall {typical['overhead_wall'] / alone['overhead_wall']:.2f}x "
        f"({typical['overhead_wall']:.0f} vs {alone['overhead_wall']:.0f} ns), "
        f"CPU {typical['overhead_cpu'] / alone['overhead_cpu']:.2f}x "
        f"({typical['overhead_cpu']:.0f} vs {alone['overhead_cpu']:.0f} ns)"
    )
    if cores < FLEET:
        print(
            f"  note: {FLEET} processes share {cores} cores (median CPU share per process "
            f"{typical['cpu_share']:.2f}), so the wall-time figures are dominated by CPU sharing, not by "
            "eddie; the CPU-time overhead is the per-process cost of recording, and the fleet's total "
            f"events/s is bounded by {cores} cores against the 1 core a process alone can use"
        )
    if starved:
        print(
            f"  {starved} fleet slices had no call at all (the process was not scheduled before the slice "
            "ended): left out of the ns/call medians, counted in the events/s"
        )
    fleet_first = sorted(float(result["first_scrape"]) for result in fleet)  # type: ignore[arg-type]
    alone_first = [float(result["first_scrape"]) for result in alone_runs]  # type: ignore[arg-type]
    print(
        f"time from Popen to first HTTP 200 via discovery (poll every {POLL * 1e3:.0f} ms): "
        f"fleet median {statistics.median(fleet_first):.2f} s, max {fleet_first[-1]:.2f} s "
        f"(all {FLEET} started at once); alone {', '.join(f'{value:.2f}' for value in alone_first)} s"
    )
    print("correctness")
    ok = all(
        [
            _check("alone, before", alone_before),
            _check(f"fleet of {FLEET}", fleet),
            _check("alone, after", alone_after),
        ]
    )
    print(f"counters exact and discovery cleaned up: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
