"""Soak: `eddie-otel serve` under steady batch load, watching its resident memory.

Runs `eddie-otel serve` in a subprocess on a free loopback port for --minutes (default 10)
and drives POST /events with batches of mixed events from CONNECTIONS asyncio clients,
each sending its next batch as soon as the previous one is answered (the highest rate
the server sustains). Every 30 s it prints the elapsed time, the events/s of that
interval and the server's RSS (VmRSS from /proc/PID/status). At the end it prints the
RSS curve and the spread (max - min) of the RSS after the first 2 minutes, once the
server's history windows have filled: the target is within 2 MiB. Opt-in only:
`python -m benchmarks soak [--minutes N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from benchmarks._common import free_port
from benchmarks.bench_events import BATCH, BATCH_PATH, BATCH_SIZE, _request, _start, _stop, read_accepted

CONNECTIONS = 8
INTERVAL_SECONDS = 30.0
FILL_SECONDS = 120.0
TARGET_SPREAD_BYTES = 2 * 2**20


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid`, from /proc/PID/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _client(port: int, deadline: float, counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request(port, BATCH_PATH, BATCH)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            await read_accepted(reader)
            counter[0] += BATCH_SIZE
    finally:
        writer.close()
        await writer.wait_closed()


async def _drive(port: int, pid: int, seconds: float) -> list[tuple[float, float, int]]:
    """Load the server for `seconds`; (elapsed s, events/s of the interval, RSS bytes) every interval."""
    started = time.monotonic()
    deadline = started + seconds
    counter = [0]
    curve = [(0.0, 0.0, rss_bytes(pid))]
    print(f"  {'elapsed s':>9} {'events/s':>10} {'RSS MiB':>9}", flush=True)
    print(f"  {0.0:9.0f} {0.0:10.0f} {curve[0][2] / 2**20:9.2f}", flush=True)
    clients = asyncio.gather(*(_client(port, deadline, counter) for _ in range(CONNECTIONS)))
    last_time, last_count = started, 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                done, _ = await asyncio.wait({clients}, timeout=min(INTERVAL_SECONDS, remaining))
            else:  # the clients stop at the deadline: wait for their last answers once
                await asyncio.wait({clients})
                done = {clients}
            now = time.monotonic()
            rate = (counter[0] - last_count) / (now - last_time)
            last_time, last_count = now, counter[0]
            curve.append((now - started, rate, rss_bytes(pid)))
            elapsed, _, rss = curve[-1]
            print(f"  {elapsed:9.0f} {rate:10.0f} {rss / 2**20:9.2f}", flush=True)
            if done:
                clients.result()
                return curve
    finally:
        if not clients.done():
            clients.cancel()


def main(argv: list[str] | None = None) -> None:
    """Parse --minutes, run the soak and print the RSS curve and its spread after the fill."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks soak", description="Soak `eddie-otel serve` with batches and watch its RSS."
    )
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="how long to drive the server, in minutes (default: 10)"
    )
    minutes = parser.parse_args(argv).minutes
    if minutes <= 0:
        parser.error("--minutes must be positive")
    args = " ".join(argv) if argv else ""
    print(f"command: {sys.executable} -m benchmarks soak {args}".rstrip(), flush=True)
    port = free_port()
    process = _start([sys.executable, "-m", "eddie_otel", "serve", "--port", str(port)], port)
    print(
        f"eddie-otel serve pid {process.pid} on 127.0.0.1:{port}; {CONNECTIONS} connections, "
        f"batches of {BATCH_SIZE} mixed events, {minutes:g} min",
        flush=True,
    )
    try:
        curve = asyncio.run(_drive(port, process.pid, minutes * 60))
    finally:
        _stop(process)
    total_rate = sum(rate for _, rate, _ in curve[1:]) / max(1, len(curve) - 1)
    print(f"mean of the interval rates: {total_rate:.0f} events/s")
    print("RSS curve (MiB): " + ", ".join(f"{elapsed:.0f}s={rss / 2**20:.2f}" for elapsed, _, rss in curve))
    settled = [rss for elapsed, _, rss in curve if elapsed >= FILL_SECONDS]
    if len(settled) < 2:
        print(f"RSS spread after the first {FILL_SECONDS / 60:.0f} min: n/a (fewer than 2 samples after the fill)")
        return
    spread = max(settled) - min(settled)
    verdict = "met" if spread <= TARGET_SPREAD_BYTES else "MISSED"
    print(
        f"RSS spread (max - min) after the first {FILL_SECONDS / 60:.0f} min: {spread / 2**20:.2f} MiB "
        f"over {len(settled)} samples (target ≤ {TARGET_SPREAD_BYTES / 2**20:.0f} MiB: {verdict})"
    )


if __name__ == "__main__":
    main()
