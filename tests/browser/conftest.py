"""Real-browser tests: the store served by uvicorn on 127.0.0.1 (support.serving), driven
by Chromium.

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

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.support import (
    CHROMIUM,
    LAUNCH_ARGS,
    LiveServer,
    Watch,
    open_context,
    serving,
)


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The store with the demo catalog, served on 127.0.0.1:<free port> while the browser
    tests run (stopped after them: its threads must not outlive them)."""
    with serving(tmp_path_factory.mktemp("live")) as server:
        yield server


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
