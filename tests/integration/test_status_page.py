"""The status page and /docs in a real browser: Debian's chromium, headless, against the real app on loopback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from tests.integration.browser import Visit

TOKEN = "page-test-token"
# Long enough for a few refreshes of the page, short enough to fail fast.
WAIT_MS = 15_000


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
        assert rows == ["codegen\t4\t2.00 s\t4.00 s\t4.00 s"]
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
    open_page(visit, server)

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
