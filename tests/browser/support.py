"""Helpers of the browser tests: launch options, the request watch, the page checks."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from rich.console import Console

from application.store import Store
from appstore.bootstrap import build_store, create_app
from appstore.demo import DEMO_PASSWORD, load_demo
from appstore.settings import Settings, WebhookSettings
from domain.clock import Clock

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
    app: Any = None

    def settle(self, position: int | None) -> None:
        """Waits until the served read models show a write made behind the pages' back."""
        if position and self.app is not None:
            self.app.state.projector.wake.set()
            assert self.app.state.projector.wait(position, 10), "read models did not catch up"


class ShiftedClock:
    """The wall clock moved by `offset` (a test sets it to act in the past, say an install
    made weeks ago, then sets it back)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@contextmanager
def serving(folder: Path, clock: Clock | None = None) -> Iterator[LiveServer]:
    """The store with the demo catalog in `folder`, served on 127.0.0.1:<free port> until
    the block ends (its threads must not outlive the tests that use it). Webhooks are sent
    (by the server's dispatcher) and may go to a receiver on loopback."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(
        database_url=f"sqlite:///{folder}/appstore.db",
        fast_password_hashing=True,
        secret_key="browser-tests",
        public_url=f"http://127.0.0.1:{port}",  # the issuer and the links the pages show
        webhooks=WebhookSettings(allow_loopback=True, poll_interval=0.05),
    )
    store = build_store(settings, clock=clock)
    load_demo(store, apps=DEMO_APPS, console=Console(file=io.StringIO()))
    app = create_app(settings, store=store, dispatch=True)
    app.state.projector.catch_up()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", store, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()
        app.state.projector.engine.dispose()


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


# What sticks out on the right (elements, then text): what makes a page scroll sideways.
WIDEST = """width => {
  const out = [], past = r => r.right + window.scrollX > width + 1;
  for (const e of document.querySelectorAll('body *'))
    if (past(e.getBoundingClientRect()) && ![...e.children].some(c => past(c.getBoundingClientRect())))
      out.push(`${e.tagName.toLowerCase()}.${e.className}`);
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const range = document.createRange(); range.selectNodeContents(n);
    if (past(range.getBoundingClientRect())) out.push(`text "${n.textContent.trim().slice(0, 40)}"`);
  }
  return out.slice(0, 5);
}"""


def check_page(page: Any, name: str) -> None:
    """Accessible (axe), readable at 375 px (no sideways scrolling), screenshotted."""
    assert_accessible(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, (
                f"{page.url} is {overflow} px wide at {width} px: {page.evaluate(WIDEST, width)}"
            )
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


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    """Signs in on /signin (from wherever the page is, so `next` brings it back)."""
    if urlsplit(page.url).path != "/signin":
        page.goto("/signin")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    follow(page, page.get_by_role("button", name="Sign in"))


def tab_to(page: Any, name: str, limit: int = 60) -> None:
    """Presses Tab until the focused element's text (or value) starts with `name`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(document.activeElement.innerText || document.activeElement.value || '').trim()"
        )
        if focused.startswith(name):
            return
    raise AssertionError(f"Tab never reached {name!r}")
