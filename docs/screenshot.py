"""Take docs/status-page.png: `eddie-otel demo` on a free port, its status page in headless chromium.

Run from the repository root with the project's venv: .venv/bin/python docs/screenshot.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.conftest import free_port
from tests.integration.browser import CHROMIUM_ARGS, DESKTOP

# Long enough for the sparklines to show a minute of the run.
WARM_UP_SECONDS = 75
OUTPUT = Path(__file__).parent / "status-page.png"


def main() -> int:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "eddie_otel", "demo", "--port", str(port), "--seed", "7", "--agents", "5"],
        stdout=subprocess.DEVNULL,
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport=DESKTOP)
            time.sleep(2)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-updates]", state="attached")
            time.sleep(WARM_UP_SECONDS)
            page.screenshot(path=str(OUTPUT), full_page=True)
            browser.close()
    finally:
        demo.terminate()
        demo.wait(60)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
