"""The label-combination attack through POST /events: the scrape keeps answering, and keeps its shape.

A real service on a loopback port receives batches of valid `timeout` events whose
label combinations are all new: agents a0 to a199, stages s0 to s199 and a fresh reason
per event (a superset of the reported attack, agents a0 to a99, stages s0 to s99 and fresh
reasons, so that the per-label cap of every label is passed too). 100 batches of 1 000 events pass the
per-label cap (100) of each label tens of thousands of times and the per-metric series
budget (2 000) about a hundred thousand times. Meanwhile and afterwards, every scrape
answers 200 within 2 s with the same label names in every family as before the attack;
the SDK's `otel_metric_overflow` never shows; the combinations past the budget are in
the one all-`other` series and counted by eddie_otel_series_overflow_total.
"""

from __future__ import annotations

import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from tests.support.helpers import sample_value

BATCHES = 100
BATCH_SIZE = 1000
AGENTS = STAGES = 200
SCRAPE_DEADLINE_SECONDS = 2.0
BUDGET = 2000  # EDDIE_OTEL_MAX_SERIES_PER_METRIC's default
OVERFLOW = {"agent": "other", "reason": "other", "stage": "other"}


def label_names(text: str) -> dict[str, frozenset[str]]:
    """Every family of an exposition and the label names its samples carry (`le` included for buckets)."""
    return {
        family.name: frozenset(name for sample in family.samples for name in sample.labels)
        for family in text_string_to_metric_families(text)
    }


def attack_batch(batch: int) -> dict[str, list[dict[str, str]]]:
    """Batch `batch` of the attack: every event a label combination never sent before."""
    events = []
    for index in range(BATCH_SIZE):
        n = batch * BATCH_SIZE + index
        agent, stage = f"a{n % AGENTS}", f"s{(n // AGENTS) % STAGES}"
        events.append({"type": "timeout", "agent": agent, "stage": stage, "reason": f"r{n}"})
    return {"events": events}


class Scraper(threading.Thread):
    """Scrapes /metrics/prometheus in a loop until stopped, keeping each answer's status, time and text."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[int, float, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=30) as client:
                while not self.stop.is_set():
                    self.answers.append(scrape(client))
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error


def scrape(client: httpx.Client) -> tuple[int, float, str]:
    """One scrape: (status, seconds it took, text)."""
    started = time.perf_counter()
    response = client.get("/metrics/prometheus")
    return response.status_code, time.perf_counter() - started, response.text


def test_a_million_combinations_leave_every_scrape_fast_and_the_same_shape() -> None:
    with BackgroundServer(create_app()) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        # Before the attack: one ordinary timeout, so that its family shows its label names.
        normal = {"agent": "python-agent", "stage": "codegen", "reason": "deadline"}
        assert client.post("/events/timeout", json=normal).status_code == 202
        status, _, before_text = scrape(client)
        assert status == 200
        before = label_names(before_text)
        assert before["timeout_events"] == {"agent", "stage", "reason"}

        scraper = Scraper(server.url)
        scraper.start()
        started = time.monotonic()
        try:
            for batch in range(BATCHES):
                response = client.post("/events", json=attack_batch(batch))
                assert (response.status_code, response.json()["accepted"]) == (202, BATCH_SIZE)
        finally:
            scraper.stop.set()
            scraper.join(timeout=30)
        attack_seconds = time.monotonic() - started
        assert scraper.error is None, scraper.error
        during = list(scraper.answers)
        after = [scrape(client) for _ in range(3)]

    assert attack_seconds < 60, f"the attack took {attack_seconds:.0f} s"
    assert len(during) >= 3, f"only {len(during)} scrapes during the attack"
    for status, seconds, text in during + after:
        assert status == 200
        assert seconds < SCRAPE_DEADLINE_SECONDS, f"a scrape took {seconds:.2f} s"
        assert "otel_metric_overflow" not in text
        shape = label_names(text)
        # No label appears or disappears in a family that was there before the attack.
        assert {name: shape[name] for name in before if name in shape} == {
            name: labels for name, labels in before.items() if name in shape
        }
        # New families are only eddie-otel's own accounting of the limits.
        assert set(shape) - set(before) <= {"eddie_otel_series_overflow", "eddie_otel_label_values_capped"}

    text = after[-1][2]
    assert set(label_names(text)) >= set(before)
    timeout_series = [
        sample
        for family in text_string_to_metric_families(text)
        if family.name == "timeout_events"
        for sample in family.samples
        if sample.name == "timeout_events_total"
    ]
    assert len(timeout_series) == BUDGET + 1  # the budget's combinations, and the overflow series
    assert sample_value(text, "timeout_events_total", **OVERFLOW) > 0
    assert sample_value(text, "eddie_otel_series_overflow_total", metric="timeout_events_total") > 0
    assert sample_value(text, "timeout_events_total", **normal) == 1.0
    # Nothing was lost: every event is counted, in its own series or in the overflow series.
    assert sum(sample.value for sample in timeout_series) == 1 + BATCHES * BATCH_SIZE
