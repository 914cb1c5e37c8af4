"""`eddie-otel demo`: the metrics service and a simulated distributed-fallback workload beside it."""

from __future__ import annotations

import math
import sys
import threading
import time

from eddie_otel.errors import EddieOtelError
from eddie_otel.runtime import shutdown
from eddie_otel.service.page import PAGE_PATH
from eddie_otel.service.server import start_service, stop_signals, urls
from eddie_otel.service.workload import Workload

__all__ = ["PROGRESS_SECONDS", "demo_command"]

# Often enough to see the run move, rarely enough to read each line.
PROGRESS_SECONDS = 3.0
# How long the workload gets to finish the work it started once stopped.
STOP_SECONDS = 30.0


def demo_command(
    *, host: str | None, port: int | None, duration: float, seed: int, agents: int, traces: str | None = None
) -> int:
    """Run the service on host:port and a workload of `agents` agents for `duration` seconds (0: until a signal).

    `traces` (console, otlp or none; None: OTEL_TRACES_EXPORTER) turns the workload's spans on.
    """
    stop = threading.Event()
    with stop_signals(stop):
        try:
            workload = Workload(seed=seed, agents=agents)
            runtime, server = start_service(host, port, traces)
        except (EddieOtelError, ValueError) as error:
            print(f"eddie-otel demo: {error}", file=sys.stderr)
            return 1
        where = urls(server.url)
        # The page first: it is what a newcomer should open.
        print(f"eddie-otel demo: open {server.url}{PAGE_PATH} to watch it live", flush=True)
        print(f"eddie-otel demo: {len(workload.agents)} agents, seed {seed}", flush=True)
        print(f"  metrics  {where['metrics']}", flush=True)
        print(f"  summary  {where['summary']}", flush=True)
        print(f"  health   {where['health']}", flush=True)
        if runtime.announcement is not None:
            print(f"  announced in {runtime.announcement.path}", flush=True)
        if runtime.tracing is not None:
            exporters = ", ".join(runtime.settings.trace_exporters) or "the installed TracerProvider"
            print(f"  traces   {exporters}", flush=True)
        until = "Ctrl-C stops" if duration == 0 else f"stops after {duration:g} s"
        print(f"eddie-otel demo: running; {until}", flush=True)

        worker = threading.Thread(target=workload.run, args=(stop,), name="eddie-otel-demo", daemon=True)
        started = time.monotonic()
        worker.start()
        status = _wait(stop, worker, started, duration, workload)
        stop.set()
        worker.join(STOP_SECONDS)
        server.stop()
        shutdown()
    print(f"eddie-otel demo: stopped after {time.monotonic() - started:.0f} s; {_stats(workload)}", flush=True)
    return status


def _wait(stop: threading.Event, worker: threading.Thread, started: float, duration: float, workload: Workload) -> int:
    """Report progress until `stop`, the end of `duration` (0: none), or the workload's end; the exit status."""
    deadline = started + duration if duration > 0 else math.inf
    next_report = started + PROGRESS_SECONDS
    while True:
        if stop.wait(max(0.0, min(deadline, next_report) - time.monotonic())):
            return 0
        now = time.monotonic()
        if now >= deadline:
            return 0
        if not worker.is_alive():
            print("eddie-otel demo: the workload stopped unexpectedly", file=sys.stderr)
            return 1
        if now >= next_report:
            print(f"eddie-otel demo: {now - started:4.0f} s  {_stats(workload)}", flush=True)
            next_report += PROGRESS_SECONDS


def _stats(workload: Workload) -> str:
    return " ".join(f"{name}={count}" for name, count in workload.stats().items())
