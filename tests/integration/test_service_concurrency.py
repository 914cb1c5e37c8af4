"""Events posted by many clients at once are all counted, exactly, over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer

CLIENTS = 8
EVENTS_PER_CLIENT = 500


@pytest.fixture
def base_url(port: int) -> Iterator[str]:
    """The base URL of the service on a free loopback port."""
    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        yield server.url


def run_clients(base_url: str, work: Callable[[httpx.Client, int], list[int]]) -> list[int]:
    """Run `work(client, index)` in CLIENTS threads released together; every status they saw."""
    start = threading.Barrier(CLIENTS)
    statuses: list[list[int]] = [[] for _ in range(CLIENTS)]
    failures: list[BaseException] = []

    def client_thread(index: int) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=30) as client:
                start.wait(timeout=30)
                statuses[index] = work(client, index)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=client_thread, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    return [status for seen in statuses for status in seen]


def test_eight_clients_post_500_events_each(base_url: str) -> None:
    def work(client: httpx.Client, index: int) -> list[int]:
        event = {"agent": f"agent-{index}", "chunks": 2, "depth": 0}
        return [client.post("/events/task_split", json=event).status_code for _ in range(EVENTS_PER_CLIENT)]

    statuses = run_clients(base_url, work)

    assert statuses == [202] * (CLIENTS * EVENTS_PER_CLIENT)
    totals = httpx.get(base_url + "/metrics/summary").json()["totals"]
    assert totals["task_split"] == 4000
    assert totals["task_split_chunks"] == 8000
    lines = httpx.get(base_url + "/metrics/prometheus").text.splitlines()
    for index in range(CLIENTS):
        assert f'task_split_total{{agent="agent-{index}"}} 500.0' in lines
    assert 'eddie_otel_events_total{outcome="accepted",type="task_split"} 4000.0' in lines


def test_eight_clients_post_batches_of_mixed_events(base_url: str) -> None:
    batch = {
        "events": [
            {"type": "merge", "chunks_combined": 3, "duplicates_removed": 1},
            {"type": "task_completed", "stage": "codegen", "duration_seconds": 0.5, "success": True},
            {"type": "chunk_executed", "agent": "a1", "duration_seconds": 0.25},
            {"type": "timeout", "agent": "a1", "stage": "codegen"},
            {"type": "task_completed", "stage": "review", "duration_seconds": 2.0, "success": False},
        ]
    }

    def work(client: httpx.Client, index: int) -> list[int]:
        return [client.post("/events", json=batch).status_code for _ in range(EVENTS_PER_CLIENT // 5)]

    statuses = run_clients(base_url, work)

    assert statuses == [202] * (CLIENTS * EVENTS_PER_CLIENT // 5)
    batches = CLIENTS * EVENTS_PER_CLIENT // 5
    totals = httpx.get(base_url + "/metrics/summary").json()["totals"]
    assert totals["merge_chunks_combined"] == 3 * batches
    assert totals["merge_deduplication"] == batches
    assert totals["task_success"] == batches
    assert totals["task_failure"] == batches
    assert totals["timeout_events"] == batches
    assert totals["agent_tasks_executed"] == batches
    lines = httpx.get(base_url + "/metrics/prometheus").text.splitlines()
    assert f'chunk_execution_seconds_count{{agent="a1"}} {float(batches)}' in lines
    assert f'task_execution_seconds_count{{stage="codegen"}} {float(batches)}' in lines
