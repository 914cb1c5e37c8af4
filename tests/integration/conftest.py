"""Browser fixtures: Debian's chromium driven headless by Playwright, and the service on a loopback port."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from tests.conftest import REQUIRE_PROMETHEUS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# The system browser, quiet: no network of its own (updates, sync, field trials), no GPU, no sandbox as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def _missing(message: str) -> None:
    # CI sets EDDIE_OTEL_REQUIRE_PROMETHEUS and installs chromium beside prometheus: missing is a failure there.
    if REQUIRE_PROMETHEUS:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the system chromium; skips (or fails, in CI) when it is missing."""
    path = shutil.which("chromium")
    if path is None:
        _missing("chromium not found: install the Debian package chromium")
    assert path is not None
    return path


# Per module, not per session: Playwright's sync API keeps an event loop current in the main thread
# until it stops, and the async tests of other modules need that thread's loop free.
@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    """One headless chromium per module, started by Playwright from the system binary."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright not installed: pip install -e '.[dev]'")
        raise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(port: int) -> Iterator[BackgroundServer]:
    """The service (configured from the environment) served by uvicorn on a free loopback port."""
    with BackgroundServer(create_app(), "127.0.0.1", port) as running:
        yield running


@dataclass
class Visit:
    """A page in its own browser context, with every request URL and every console error it caused."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        """Requests that left loopback (data: URLs never leave the browser)."""
        foreign = []
        for url in self.requests:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "data" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
                foreign.append(url)
        return foreign


def visit(browser: Browser, viewport: dict[str, int]) -> Iterator[Visit]:
    """A fresh context and page of `viewport` size, recording requests and console errors."""
    context = browser.new_context(viewport=viewport, service_workers="block")  # type: ignore[arg-type]
    page = context.new_page()
    seen = Visit(page)
    context.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda message: seen.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    try:
        yield seen
    finally:
        context.close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Visit]:
    """A desktop-sized (1440 by 900) page."""
    yield from visit(browser, DESKTOP)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Visit]:
    """A phone-sized (390 by 844) page."""
    yield from visit(browser, PHONE)
