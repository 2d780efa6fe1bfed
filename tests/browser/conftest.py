"""Real-browser tests: the store served by uvicorn on 127.0.0.1, driven by Chromium.

- `live_server`: the whole app (API + pages, projections in-process) on a free port, over a
  SQLite store in a temporary folder holding the demo catalog; fast password hashing.
- `page`: a fresh Chromium context at 1280 x 800. Requests that leave 127.0.0.1 are
  blocked and fail the test, and so do errors in the browser console (CSP included).
- `check_page(page, name)`: axe-core finds no serious or critical violation, the page fits
  375 px without scrolling sideways, and it is screenshotted at 375 and 1280 px into
  var/screenshots/ (ignored by git).

Chromium is Debian's package (`make test` installs it). Without it a browser test skips;
under `make test` (APPSTORE_TEST_REQUIRE_SERVICES names `browser`) that skip is a failure
(tests/conftest.py turns it into one, as for PostgreSQL and Kafka).
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from rich.console import Console

from appstore.bootstrap import build_store, create_app
from appstore.demo import load_demo
from appstore.settings import Settings
from tests.browser.support import (
    CHROMIUM,
    DEMO_APPS,
    LAUNCH_ARGS,
    LiveServer,
    Watch,
    open_context,
)


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The store with the demo catalog, served on 127.0.0.1:<free port> while the browser
    tests run (stopped after them: its threads must not outlive them)."""
    folder = tmp_path_factory.mktemp("live")
    settings = Settings(
        database_url=f"sqlite:///{folder}/appstore.db",
        fast_password_hashing=True,
        secret_key="browser-tests",
    )
    store = build_store(settings)
    load_demo(store, apps=DEMO_APPS, console=Console(file=io.StringIO()))
    app = create_app(settings, store=store)
    app.state.projector.catch_up()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
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
        yield LiveServer(f"http://127.0.0.1:{port}", store)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()
        app.state.projector.engine.dispose()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), for the browser tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.skip(f"playwright is not installed ({error}); run make venv")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (make test does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Any, live_server: LiveServer, watch: Watch) -> Iterator[Any]:
    """A page in a fresh context (no cookies) at 1280 x 800."""
    context = open_context(browser, live_server, watch)
    page = context.new_page()
    page.on("console", watch.console)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    page.on("response", watch.response)
    try:
        yield page
    finally:
        context.close()
    assert not watch.offsite, f"pages requested other hosts: {watch.offsite}"
    assert not watch.errors, f"errors in the browser console: {watch.errors}"
