"""The status page and /docs in a real browser: Debian's chromium, headless, against the real app on loopback."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import Route

import eddie_otel
from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from tests.integration.browser import Visit

TOKEN = "page-test-token"
# Long enough for a few refreshes of the page, short enough to fail fast.
WAIT_MS = 15_000
# Enough successful tasks for a timeout recommendation in these tests (the default is 50).
MIN_SAMPLES = 5
NO_SPLIT = "No task has been split yet."
NOT_ENOUGH_DATA = "not enough data"


def summary(server: BackgroundServer) -> dict[str, Any]:
    """What GET /metrics/summary answers now."""
    body: dict[str, Any] = httpx.get(server.url + "/metrics/summary", timeout=10).json()
    return body


def post(server: BackgroundServer, type_name: str, body: dict[str, Any]) -> None:
    """POST one event with the webhook token."""
    response = httpx.post(
        f"{server.url}/events/{type_name}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 202, response.text


def open_page(visit: Visit, server: BackgroundServer) -> None:
    """Load the status page and wait until it has drawn a summary."""
    visit.page.goto(server.url + "/")
    # A selector, not wait_for_function: the page's CSP forbids the eval that a polled function needs.
    visit.page.wait_for_selector("body[data-updates]", state="attached", timeout=WAIT_MS)


def wait_for_renders(visit: Visit, count: int = 2) -> None:
    """Wait until the page has drawn `count` more summaries: the last from a request sent after this call."""
    done = int(visit.page.get_attribute("body", "data-updates") or 0)
    visit.page.wait_for_selector(f'body[data-updates="{done + count}"]', state="attached", timeout=WAIT_MS)


def formatted(visit: Visit, name: str, value: float | None) -> str:
    """What the page's EddieFormat.`name` shows for `value` (null: the missing value)."""
    text: str = visit.page.evaluate("([name, value]) => EddieFormat[name](value)", [name, value])
    return text


def shown_fallback(visit: Visit) -> dict[str, dict[str, str]]:
    """Each figure of the Fallback card: raw value attribute and visible texts."""
    shown: dict[str, dict[str, str]] = visit.page.eval_on_selector_all(
        "#fallback [data-fallback]",
        """items => Object.fromEntries(items.map(item => [item.dataset.fallback, {
            name: item.querySelector('.name').textContent,
            raw: item.querySelector('.value').dataset.value,
            value: item.querySelector('.value').textContent,
            detail: item.querySelector('.detail').textContent,
        }]))""",
    )
    return shown


def fallback_state(visit: Visit) -> tuple[bool, bool, str]:
    """Whether the card's figures and its empty text are visible, and that text."""
    return (
        visit.page.is_visible("#fallback"),
        visit.page.is_visible("#fallback-empty"),
        visit.page.text_content("#fallback-empty") or "",
    )


def stage_rows(visit: Visit) -> dict[str, list[str]]:
    """Each stage's row of the latency table: its cells' texts, stage first."""
    rows: list[list[str]] = visit.page.eval_on_selector_all(
        "#latency tbody tr:not(.detail-row)", "rows => rows.map(row => Array.from(row.cells, cell => cell.textContent))"
    )
    return {row[0]: row for row in rows}


def stage_details(visit: Visit) -> dict[str, dict[str, str]]:
    """The line under each stage's row that has one: its reason attribute and text."""
    details: dict[str, dict[str, str]] = visit.page.eval_on_selector_all(
        "#latency tbody tr.detail-row",
        """rows => Object.fromEntries(rows.map(row => [row.dataset.stage, {
            reason: row.dataset.reason, text: row.textContent, previous: row.previousElementSibling.dataset.stage,
        }]))""",
    )
    return details


def expected_recommendation(visit: Visit, timeout: dict[str, Any]) -> str:
    """The Recommended cell for a stage's `timeouts` entry: a duration, or the reason when there is none."""
    if timeout["recommended_seconds"] is not None:
        return formatted(visit, "duration", timeout["recommended_seconds"])
    return NOT_ENOUGH_DATA if timeout["reason"] == NOT_ENOUGH_DATA else "—"


def expected_reason(visit: Visit, timeout: dict[str, Any]) -> str:
    """The line under a stage's row for its `timeouts` entry."""
    reason = timeout["reason"]
    if reason == "too tight":
        return f"too tight: {timeout['hit_share'] * 100:.1f}% of tasks hit it"
    if reason == "too loose":
        p99 = formatted(visit, "duration", timeout["p99"])
        return f"too loose: p99 of successful tasks ({p99}) is under a third of it"
    if reason == NOT_ENOUGH_DATA:
        samples = timeout["samples"]
        return f"not enough data: {samples} successful task{'' if samples == 1 else 's'} so far"
    assert reason == "ok"
    return f"ok: {timeout['hit_share'] * 100:.1f}% of tasks hit it"


def split_tasks(stage: str, outcomes: list[bool], chunk_seconds: float, cost_usd: float) -> None:
    """Run one task of `stage` per outcome (True: it succeeds) that splits, runs a chunk and records its work."""

    @eddie_otel.chunk(agent="worker")
    def chunk() -> None:
        eddie_otel.record_usage(agent="worker", model="m", input_tokens=100, output_tokens=10, cost_usd=cost_usd)

    @eddie_otel.task(stage=stage, agent="lead")
    def task(succeeds: bool) -> None:
        assert eddie_otel.record_split(agent="lead", chunks=2, depth=1)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(eddie_otel.propagate(chunk)).result()
        # A chunk measured elsewhere, recorded in the split task's context: fallback time of its stage.
        eddie_otel.record_chunk(agent="worker", duration_seconds=chunk_seconds)
        if not succeeds:
            raise RuntimeError("the chunks could not finish the task")

    for succeeds in outcomes:
        try:
            task(succeeds)
        except RuntimeError:
            assert not succeeds


def shown_indicators(visit: Visit) -> dict[str, dict[str, str]]:
    """Each indicator as the page shows it: state attribute, raw value attribute, visible texts."""
    shown: dict[str, dict[str, str]] = visit.page.eval_on_selector_all(
        "[data-indicator]",
        """items => Object.fromEntries(items.map(item => [item.dataset.indicator, {
            state: item.dataset.state,
            className: item.className,
            raw: item.querySelector('.value').dataset.value,
            value: item.querySelector('.value').textContent,
            target: item.querySelector('.target').textContent,
            label: item.querySelector('.state').textContent,
        }]))""",
    )
    return shown


def expected_state(indicator: dict[str, Any]) -> str:
    """The state the page must show for an indicator of the summary."""
    if indicator["ok"] is None:
        return "no-data"
    return "ok" if indicator["ok"] else "failing"


def assert_matches_summary(shown: dict[str, dict[str, str]], indicators: list[dict[str, Any]]) -> None:
    assert list(shown) == [indicator["name"] for indicator in indicators]
    for indicator in indicators:
        page = shown[indicator["name"]]
        assert page["state"] == expected_state(indicator), indicator["name"]
        if indicator["value"] is None:
            assert (page["raw"], page["value"]) == ("", "—")
        else:
            assert float(page["raw"]) == pytest.approx(indicator["value"]), indicator["name"]


def test_the_page_shows_the_summary_and_follows_it_without_reloading(
    monkeypatch: pytest.MonkeyPatch, port: int, desktop: Visit
) -> None:
    # The page only reads: a webhook token must not stop it, and must not show up in it.
    monkeypatch.setenv("EDDIE_OTEL_WEBHOOK_TOKEN", TOKEN)
    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        open_page(desktop, server)
        shown = shown_indicators(desktop)
        assert_matches_summary(shown, summary(server)["indicators"])
        assert {page["label"] for page in shown.values()} == {"– no data"}
        desktop.page.evaluate("window.notReloaded = true")

        post(
            server, "task_completed", {"stage": "codegen", "duration_seconds": 2.0, "success": True, "agent": "agent-1"}
        )
        for seconds in (0.25, 4.0, 4.0):
            post(server, "task_completed", {"stage": "codegen", "duration_seconds": seconds, "success": False})
        post(server, "merge", {"chunks_combined": 10, "duplicates_removed": 0})
        desktop.page.wait_for_selector('[data-indicator="success_rate"][data-state="failing"]', timeout=WAIT_MS)

        assert desktop.page.evaluate("window.notReloaded") is True
        indicators = summary(server)["indicators"]
        shown = shown_indicators(desktop)
        assert_matches_summary(shown, indicators)
        success = shown["success_rate"]
        assert (success["value"], success["target"], success["label"]) == ("25.0%", "target ≥ 95.0%", "✗ not ok")
        assert "failing" in success["className"].split()
        merge = shown["merge_efficiency"]
        assert (merge["state"], merge["value"], merge["label"]) == ("ok", "100.0%", "✓ ok")
        assert "failing" not in merge["className"].split()
        failing = sum(indicator["ok"] is False for indicator in indicators)
        assert desktop.page.text_content("#verdict") == f"{failing} not ok"
        rows = desktop.page.eval_on_selector_all("#latency tbody tr", "rows => rows.map(row => row.innerText)")
        assert rows == [
            "codegen\t4\t2.00 s\t4.00 s\t4.00 s\t—\tnot enough data",
            "not enough data: 1 successful task so far",
        ]
        agents = desktop.page.eval_on_selector_all("#agents tbody th", "cells => cells.map(cell => cell.textContent)")
        assert agents == ["agent-1"]
        failures = desktop.page.text_content('[data-rate="task_failure"] .count')
        assert failures == "3 in 5 min"

        assert TOKEN not in desktop.page.content()
        assert desktop.errors == []
        assert desktop.foreign_requests() == []
        assert any(url.endswith("/metrics/summary") for url in desktop.requests)


def test_docs_render_swagger_ui_offline(server: BackgroundServer, desktop: Visit) -> None:
    desktop.page.goto(server.url + "/docs")

    desktop.page.wait_for_selector(".swagger-ui .info .title", timeout=WAIT_MS)
    desktop.page.wait_for_selector('.opblock-summary-path[data-path="/metrics/summary"]', timeout=WAIT_MS)
    assert "eddie-otel metrics service" in (desktop.page.text_content(".swagger-ui .info .title") or "")
    assert desktop.errors == []
    assert desktop.foreign_requests() == []
    assert server.url + "/openapi.json" in desktop.requests


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_no_horizontal_overflow(size: str, server: BackgroundServer, request: pytest.FixtureRequest) -> None:
    visit: Visit = request.getfixturevalue(size)
    post(
        server,
        "task_completed",
        {"stage": "integration-tests", "duration_seconds": 75.5, "success": True, "agent": "a" * 40},
    )
    post(server, "chunk_executed", {"agent": "typescript-agent-with-a-long-name", "duration_seconds": 0.25})
    # The Fallback card's figures and a stage's timeouts, with the line of its reason, are drawn too.
    post(
        server,
        "task_completed",
        {"stage": "integration-tests", "duration_seconds": 1.5, "success": True, "split": True},
    )
    eddie_otel.set_timeout("integration-tests", 3600)
    eddie_otel.set_timeout("a-stage-with-a-rather-long-name-and-no-task", 5400)
    open_page(visit, server)
    assert visit.page.is_visible('[data-fallback="cost_per_rescued"]')
    assert visit.page.is_visible('#latency tr.detail-row[data-stage="integration-tests"]')

    widths = visit.page.evaluate(
        "({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"], widths
    assert visit.page.is_visible('[data-indicator="success_rate"] .state')
    assert visit.errors == []


def test_a_stage_under_a_second_reads_in_milliseconds(
    monkeypatch: pytest.MonkeyPatch, port: int, desktop: Visit
) -> None:
    monkeypatch.setenv("EDDIE_OTEL_WEBHOOK_TOKEN", TOKEN)
    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        for seconds in (0.14, 0.14, 0.14, 0.002):
            post(server, "task_completed", {"stage": "review", "duration_seconds": seconds, "success": True})
        latency = summary(server)["latency"]["review"]
        assert latency["p50"] == pytest.approx(0.14)
        open_page(desktop, server)
        cells = desktop.page.eval_on_selector_all(
            "#latency tbody tr", "rows => rows.map(row => Array.from(row.cells, cell => cell.textContent))"
        )
        assert cells[0][:3] == ["review", "4", "140 ms"]
        assert desktop.errors == []


def test_the_fallback_card_and_the_stage_timeouts_show_what_the_summary_says(
    monkeypatch: pytest.MonkeyPatch, port: int, desktop: Visit
) -> None:
    monkeypatch.setenv("EDDIE_OTEL_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("EDDIE_OTEL_TIMEOUT_MIN_SAMPLES", str(MIN_SAMPLES))
    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        open_page(desktop, server)
        # A fresh service: the card says plainly that nothing was split, no zeros, no NaN.
        assert summary(server)["fallback"]["split_tasks"] == 0
        assert fallback_state(desktop) == (False, True, NO_SPLIT)
        assert desktop.page.is_visible("#latency-empty")

        # codegen: a 30 s timeout one task in seven hits; review: a 10 min timeout for 2 s tasks;
        # deploy: a timeout and no task yet; lint: failures only, no timeout; plan: split tasks.
        eddie_otel.set_timeout("codegen", 30)
        eddie_otel.set_timeout("review", 600)
        eddie_otel.set_timeout("deploy", 120)
        for seconds in (2.0, 3.0, 4.0, 5.0, 6.0, 7.0):
            post(server, "task_completed", {"stage": "codegen", "duration_seconds": seconds, "success": True})
        post(
            server,
            "task_completed",
            {"stage": "codegen", "duration_seconds": 30.0, "success": False, "reason": "timeout", "agent": "a1"},
        )
        for seconds in (1.0, 1.25, 1.5, 1.75, 2.0, 2.0):
            post(server, "task_completed", {"stage": "review", "duration_seconds": seconds, "success": True})
        post(server, "task_completed", {"stage": "lint", "duration_seconds": 0.5, "success": False})
        split_tasks("plan", [True, False, True], chunk_seconds=1800.0, cost_usd=0.5)
        wait_for_renders(desktop)
        now = summary(server)

        # The fallback card, against the summary.
        fallback = now["fallback"]
        assert (fallback["split_tasks"], fallback["rescued"], fallback["failed"]) == (3, 2, 1)
        assert fallback_state(desktop)[:2] == (True, False)
        shown = shown_fallback(desktop)
        assert list(shown) == ["rescued", "rescue_ratio", "chunk_hours", "cost_per_rescued"]
        rescued = shown["rescued"]
        assert (rescued["raw"], rescued["value"]) == (str(fallback["rescued"]), str(fallback["rescued"]))
        assert rescued["detail"] == f"{fallback['failed']} failed of {fallback['split_tasks']} split tasks"
        ratio = shown["rescue_ratio"]
        assert float(ratio["raw"]) == pytest.approx(fallback["rescue_ratio"])
        assert ratio["value"] == f"{fallback['rescue_ratio'] * 100:.1f}%"
        hours = shown["chunk_hours"]
        assert float(hours["raw"]) == pytest.approx(fallback["chunk_seconds"] / 3600)
        assert hours["value"] == formatted(desktop, "hours", fallback["chunk_seconds"])
        assert hours["value"].endswith(" h")
        assert hours["value"] != "0 h"
        per_rescued = fallback["cost_usd"] / fallback["rescued"]
        cost = shown["cost_per_rescued"]
        assert float(cost["raw"]) == pytest.approx(per_rescued)
        assert cost["value"] == formatted(desktop, "usd", per_rescued)
        assert cost["value"] != formatted(desktop, "usd", fallback["cost_usd"])
        assert cost["detail"] == f"{formatted(desktop, 'usd', fallback['cost_usd'])} spent in chunks of splits"

        # Every stage with latency or a timeout has a row; its timeouts sit after its p99.
        latency, timeouts = now["latency"], now["timeouts"]
        reasons = {stage: timeout["reason"] for stage, timeout in timeouts.items()}
        assert reasons == {
            "codegen": "too tight",
            "review": "too loose",
            "deploy": NOT_ENOUGH_DATA,
            "plan": NOT_ENOUGH_DATA,
        }
        rows = stage_rows(desktop)
        assert list(rows) == sorted(latency.keys() | timeouts.keys())
        details = stage_details(desktop)
        for stage, cells in rows.items():
            p = latency.get(stage)
            if p is None:
                assert cells[1:5] == ["—"] * 4, stage
            else:
                assert cells[1] == str(p["samples"])
                assert cells[4] == formatted(desktop, "duration", p["p99"]), stage
            timeout = timeouts.get(stage)
            if timeout is None:
                assert cells[5:] == ["—", "—"], stage
                assert stage not in details
                continue
            in_use = timeout["timeout_seconds"]
            assert cells[5] == ("—" if in_use is None else formatted(desktop, "duration", in_use)), stage
            assert cells[6] == expected_recommendation(desktop, timeout), stage
            assert details[stage]["previous"] == stage
            assert details[stage]["reason"] == timeout["reason"]
            assert details[stage]["text"] == expected_reason(desktop, timeout), stage

        # The readings themselves, for the stages whose numbers this test chose.
        assert timeouts["codegen"]["recommended_seconds"] is not None
        assert rows["codegen"][5:] == [
            formatted(desktop, "duration", 30),
            formatted(desktop, "duration", timeouts["codegen"]["recommended_seconds"]),
        ]
        assert details["codegen"]["text"].startswith("too tight: 14.3% of tasks hit it")
        assert rows["deploy"][5:] == [formatted(desktop, "duration", 120), NOT_ENOUGH_DATA]
        assert rows["plan"][5] == "—"  # successful tasks, no timeout set: null
        assert rows["lint"][5:] == ["—", "—"]
        assert desktop.errors == []


def test_a_fallback_that_rescued_nothing_has_no_cost_per_rescued_task(port: int, desktop: Visit) -> None:
    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        split_tasks("plan", [False], chunk_seconds=90.0, cost_usd=0.25)
        fallback = summary(server)["fallback"]
        assert (fallback["rescued"], fallback["failed"], fallback["rescue_ratio"]) == (0, 1, 0)
        open_page(desktop, server)

        shown = shown_fallback(desktop)
        assert (shown["rescued"]["value"], shown["rescued"]["detail"]) == ("0", "1 failed of 1 split task")
        assert shown["rescue_ratio"]["value"] == "0.0%"
        assert (shown["cost_per_rescued"]["raw"], shown["cost_per_rescued"]["value"]) == ("", "—")
        assert shown["chunk_hours"]["value"] == formatted(desktop, "hours", fallback["chunk_seconds"])
        assert desktop.errors == []


def test_a_summary_without_fallback_or_timeouts_reads_as_no_data(
    monkeypatch: pytest.MonkeyPatch, port: int, desktop: Visit
) -> None:
    # An older service: its summary has neither key. The real summary, with them taken out on its way to the page.
    monkeypatch.setenv("EDDIE_OTEL_TIMEOUT_MIN_SAMPLES", str(MIN_SAMPLES))
    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        eddie_otel.set_timeout("codegen", 30)
        for _ in range(MIN_SAMPLES):
            eddie_otel.record_task("codegen", 2.0)
        split_tasks("plan", [True], chunk_seconds=60.0, cost_usd=0.5)
        real = summary(server)
        assert real["fallback"]["split_tasks"] == 1
        assert real["timeouts"]["codegen"]["recommended_seconds"] is not None

        def older(route: Route) -> None:
            body = route.fetch().json()
            del body["fallback"], body["timeouts"]
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

        desktop.page.route("**/metrics/summary", older)
        open_page(desktop, server)

        assert fallback_state(desktop) == (False, True, NO_SPLIT)
        rows = stage_rows(desktop)
        assert list(rows) == ["codegen", "plan"]
        assert rows["codegen"][4] == formatted(desktop, "duration", 2.0)
        assert all(cells[5:] == ["—", "—"] for cells in rows.values())
        assert stage_details(desktop) == {}
        assert desktop.errors == []


def test_null_and_missing_fields_of_a_stage_timeout_read_as_a_dash(
    monkeypatch: pytest.MonkeyPatch, port: int, desktop: Visit
) -> None:
    monkeypatch.setenv("EDDIE_OTEL_TIMEOUT_MIN_SAMPLES", str(MIN_SAMPLES))
    with BackgroundServer(create_app(), "127.0.0.1", port) as server:
        for _ in range(MIN_SAMPLES):
            eddie_otel.record_task("codegen", 2.0)
        split_tasks("plan", [True], chunk_seconds=60.0, cost_usd=0.5)

        def stripped(route: Route) -> None:
            body = route.fetch().json()
            # A stage entry with nulls where the schema allows them, and one with fields missing altogether.
            body["timeouts"]["codegen"].update(timeout_seconds=None, recommended_seconds=None, hit_share=None)
            body["timeouts"]["plan"] = {"reason": NOT_ENOUGH_DATA}
            body["fallback"] = {"split_tasks": 1, "rescued": 1, "rescue_ratio": None}
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

        desktop.page.route("**/metrics/summary", stripped)
        open_page(desktop, server)

        rows = stage_rows(desktop)
        assert rows["codegen"][5:] == ["—", "—"]  # no recommendation, yet the reason is not "not enough data"
        assert rows["plan"][5:] == ["—", NOT_ENOUGH_DATA]
        details = stage_details(desktop)
        assert details["plan"]["text"] == NOT_ENOUGH_DATA
        shown = shown_fallback(desktop)
        assert shown["rescue_ratio"]["value"] == "—"
        assert shown["chunk_hours"]["value"] == "—"
        assert shown["cost_per_rescued"]["value"] == "—"
        assert shown["rescued"]["detail"] == "— failed of 1 split task"
        assert "NaN" not in (desktop.page.text_content("main") or "")
        assert desktop.errors == []
