"""Helpers of the browser tests: launch options, the request watch, the page checks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from application.store import Store
from appstore.demo import DEMO_PASSWORD

CHROMIUM = os.environ.get("APPSTORE_TEST_CHROMIUM") or "/usr/bin/chromium"
# Root, no GPU, no internet: the flags that let Debian's Chromium run headless here
# without reaching for Google's services.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WIDTHS = (375, 1280)
DEMO_APPS = 72
PASSWORD = DEMO_PASSWORD


@dataclass
class LiveServer:
    url: str
    store: Store


@dataclass
class Watch:
    """What a page did that it must not: leave the machine, or log errors."""

    offsite: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def console(self, message: Any) -> None:
        # A page answered 4xx on purpose (a form error, not found) logs "Failed to load
        # resource"; failed subresources are caught by `response` instead.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def response(self, response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.errors.append(f"{response.status} for {response.url}")


def open_context(browser: Any, live_server: LiveServer, watch: Watch, **options: Any) -> Any:
    """A browser context on the live server: off-site requests are blocked and recorded."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 800}, **options
    )
    context.set_default_timeout(10_000)

    def route(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            watch.offsite.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return context


def assert_accessible(page: Any) -> None:
    """axe-core reports no serious or critical violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    lines = [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in bad
    ]
    assert not bad, f"axe on {page.url}:\n" + "\n".join(lines)


def check_page(page: Any, name: str) -> None:
    """Accessible (axe), readable at 375 px (no sideways scrolling), screenshotted."""
    assert_accessible(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{page.url} is {overflow} px wide at {width} px"
            page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    finally:
        page.set_viewport_size(size)


def follow(page: Any, locator: Any, *, key: str | None = None) -> None:
    """Clicks (or presses `key` on) what leads to another page, and waits until it loaded."""
    with page.expect_navigation():
        if key:
            locator.press(key)
        else:
            locator.click()
