"""Browser fixtures: Debian's chromium driven headless by Playwright, and the service on a loopback port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from eddie_otel.service import create_app
from eddie_otel.service.server import BackgroundServer
from tests.conftest import REQUIRE_PROMETHEUS
from tests.integration.browser import CHROMIUM_ARGS, DESKTOP, PHONE, Visit, visit

if TYPE_CHECKING:
    from playwright.sync_api import Browser


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


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Visit]:
    """A desktop-sized (1440 by 900) page."""
    yield from visit(browser, DESKTOP)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Visit]:
    """A phone-sized (390 by 844) page."""
    yield from visit(browser, PHONE)
