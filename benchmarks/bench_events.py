"""Events per second accepted by one `eddie-otel serve` process, against a bare FastAPI endpoint.

Two modes, measured in the same rounds: single-event POSTs to /events/task_split, and
batches of BATCH_SIZE mixed events (task_split, timeout, chunk_executed, task_completed,
merge) to POST /events, where the bare endpoint parses the same JSON and answers 202.
The batch target is at least 0.4 of the bare rate in events per second.

Both servers run as separate processes on loopback ports, with the same uvicorn
settings; the bare one accepts the same JSON at the same path, parses it and records
nothing. Clients are raw keep-alive HTTP/1.1 connections driven by asyncio, cheap
enough that the server, not the client, is what is measured. The targets are
measured in turn, ROUNDS times each, and the median rate of each is reported with
its ratio to the bare endpoint (target ≥ 0.8). `eddie-otel serve` is measured twice:
as it runs by default, where the HTTP server metrics of opentelemetry-instrumentation-
fastapi leave the webhooks out (eddie_otel_events_total counts them), and with every
route in those metrics, which shows what that middleware costs per event.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from benchmarks._common import print_command

CONNECTIONS = 8
REQUESTS_PER_CONNECTION = 300
BATCHES_PER_CONNECTION = 20
BATCH_SIZE = 100
BATCH_TARGET_RATIO = 0.4
BATCH_PATH = "/events"
WARMUP_PER_CONNECTION = 25
ROUNDS = 5
TARGET_RATIO = 0.8
PATH = "/events/task_split"
SERVE = "eddie-otel serve"
# The same with the webhooks in the HTTP server metrics: another exclusion list
# replaces the default one, which leaves them out.
SERVE_ALL = "eddie-otel serve, webhooks in HTTP metrics"
ALL_ROUTES = "metrics/health"
BARE = "bare FastAPI endpoint"
EVENT = json.dumps({"agent": "agent-1", "chunks": 3, "depth": 1}).encode()
_MIXED: tuple[dict[str, object], ...] = (
    {"type": "task_split", "agent": "agent-1", "chunks": 3, "depth": 1, "task_id": "t-1"},
    {"type": "timeout", "agent": "agent-2", "stage": "codegen", "reason": "deadline"},
    {"type": "chunk_executed", "agent": "agent-1", "duration_seconds": 0.25, "success": True},
    {"type": "task_completed", "stage": "codegen", "duration_seconds": 1.5, "success": True, "agent": "agent-2"},
    {"type": "merge", "chunks_combined": 3, "duplicates_removed": 1},
)
BATCH = json.dumps({"events": [_MIXED[i % len(_MIXED)] for i in range(BATCH_SIZE)]}).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(port: int, count: int, path: str, body: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request(port, path, body)
    try:
        for _ in range(count):
            writer.write(request)
            await read_accepted(reader)
    finally:
        writer.close()
        await writer.wait_closed()


async def read_accepted(reader: asyncio.StreamReader) -> None:
    """Read one answer off a keep-alive connection; RuntimeError unless it is 202."""
    head = await reader.readuntil(b"\r\n\r\n")
    if head[9:12] != b"202":
        raise RuntimeError(f"expected 202, got {head.decode(errors='replace').splitlines()[0]}")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


async def _load(port: int, per_connection: int, path: str = PATH, body: bytes = EVENT) -> float:
    """Requests per second over CONNECTIONS concurrent connections."""
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, per_connection, path, body) for _ in range(CONNECTIONS)))
    return CONNECTIONS * per_connection / (time.perf_counter() - started)


async def _load_batches(port: int, per_connection: int) -> float:
    """Events per second, sent as batches of BATCH_SIZE over CONNECTIONS concurrent connections."""
    return BATCH_SIZE * await _load(port, per_connection, BATCH_PATH, BATCH)


def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {timeout} s")


def _start(argv: list[str], port: int, **variables: str) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "EDDIE_OTEL_"))}
    env.update(variables)
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_ready(process, port)
        asyncio.run(_load(port, WARMUP_PER_CONNECTION))
        asyncio.run(_load_batches(port, max(1, WARMUP_PER_CONNECTION // 5)))
    except BaseException:
        _stop(process)
        raise
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve_bare(port: int) -> None:
    """The baseline: a FastAPI endpoint at the same path that parses the JSON and does nothing."""
    app = FastAPI()

    @app.post(PATH, status_code=202)
    async def accept(request: Request) -> JSONResponse:
        await request.json()
        return JSONResponse({"accepted": 1}, status_code=202)

    @app.post(BATCH_PATH, status_code=202)
    async def accept_batch(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"accepted": len(body["events"])}, status_code=202)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def main() -> None:
    """Measure the servers in turn and print their rates and the ratios."""
    print_command("bench_events")
    serve = [sys.executable, "-m", "eddie_otel", "serve", "--port"]
    targets = {
        SERVE: (serve, {}),
        SERVE_ALL: (serve, {"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": ALL_ROUTES}),
        BARE: ([sys.executable, "-m", "benchmarks.bench_events", "--bare"], {}),
    }
    ports: dict[str, int] = {}
    processes: list[subprocess.Popen[bytes]] = []
    rates: dict[str, list[float]] = {name: [] for name in targets}
    batch_rates: dict[str, list[float]] = {name: [] for name in targets}
    try:
        for name, (argv, variables) in targets.items():
            ports[name] = _free_port()
            processes.append(_start([*argv, str(ports[name])], ports[name], **variables))
        for _ in range(ROUNDS):
            for name in targets:
                rates[name].append(asyncio.run(_load(ports[name], REQUESTS_PER_CONNECTION)))
                batch_rates[name].append(asyncio.run(_load_batches(ports[name], BATCHES_PER_CONNECTION)))
    finally:
        for process in processes:
            _stop(process)
    total = CONNECTIONS * REQUESTS_PER_CONNECTION
    print(f"single-event POSTs, {CONNECTIONS} connections, {total} events a round, {ROUNDS} rounds each; median:")
    print(f"  ('webhooks in HTTP metrics' = OTEL_PYTHON_FASTAPI_EXCLUDED_URLS={ALL_ROUTES})")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, median in medians.items():
        spread = ", ".join(f"{value:.0f}" for value in rates[name])
        print(f"  {name:<44} {median:7.0f} events/s  (rounds: {spread})")
    for name in (SERVE, SERVE_ALL):
        ratio = medians[name] / medians[BARE]
        verdict = "meets" if ratio >= TARGET_RATIO else "misses"
        print(f"  {name}: {ratio:.2f} × the bare rate ({verdict} the target ≥ {TARGET_RATIO})")
    batch_total = CONNECTIONS * BATCHES_PER_CONNECTION * BATCH_SIZE
    print(
        f"batches of {BATCH_SIZE} mixed events to POST {BATCH_PATH}, {CONNECTIONS} connections, "
        f"{batch_total} events a round, {ROUNDS} rounds each; median:"
    )
    batch_medians = {name: statistics.median(values) for name, values in batch_rates.items()}
    for name, median in batch_medians.items():
        spread = ", ".join(f"{value:.0f}" for value in batch_rates[name])
        print(f"  {name:<44} {median:7.0f} events/s  (rounds: {spread})")
    for name in (SERVE, SERVE_ALL):
        ratio = batch_medians[name] / batch_medians[BARE]
        verdict = "meets" if ratio >= BATCH_TARGET_RATIO else "misses"
        print(f"  {name}: {ratio:.2f} × the bare rate ({verdict} the target ≥ {BATCH_TARGET_RATIO})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        serve_bare(int(sys.argv[2]))
    else:
        main()
