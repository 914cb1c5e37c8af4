"""Driving the system chromium: its flags, the window sizes, and a page that records what it requested."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
