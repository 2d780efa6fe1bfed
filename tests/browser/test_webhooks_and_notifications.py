"""Journeys in Chromium through the pages the webhooks, notifications and consent work
added: a developer subscribes a webhook to a receiver on loopback, sees its secret once,
sends a test event, sees it delivered in the log and replays it; a seller is warned that
an app expires soon and marks the warning read; a seller takes back an optional scope and
the developer's receiver hears of it. axe and 375/1280 screenshots on every page."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from playwright.sync_api import expect

from application import accounts, installations, webhooks
from application.expiry import sweep
from domain.installation import Installation
from projections.due_installations import DueInstallations
from projections.webhook_deliveries import webhooks_of_app
from tests import factories as f
from tests.browser.support import (
    LiveServer,
    ShiftedClock,
    check_page,
    follow,
    serving,
    sign_in,
    tab_to,
)
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
_n = itertools.count(1)


@pytest.fixture(scope="module")
def shifted_clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, shifted_clock: ShiftedClock
) -> Iterator[LiveServer]:
    """A store of its own, on a clock a test may move (its dispatcher sends webhooks)."""
    with serving(tmp_path_factory.mktemp("webhooks"), clock=shifted_clock) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A developer's webhook receiver on loopback, recording what arrives."""
    started = Receiver().start()
    yield started
    started.stop()


def menu(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(name))


def email_of(live_server: LiveServer, account_id: UUID) -> str:
    return accounts.account(live_server.store, account_id).email


def reload_until(page: Any, locator: Any, timeout: float = 20) -> None:
    """Reloads the page (it has no script to refresh itself) until `locator` shows."""
    deadline = time.monotonic() + timeout
    while not locator.count():
        assert time.monotonic() < deadline, f"{locator} never showed on {page.url}"
        time.sleep(0.2)
        page.reload()


def test_a_developer_subscribes_a_webhook_tests_it_and_replays_a_delivery(
    page: Any, live_server: LiveServer, receiver: Receiver
) -> None:
    n = next(_n)
    store = live_server.store
    developer = f.developer(store)
    name = f"Hook Harbor {n}"
    app_id = f.app(store, developer, name=name)
    live_server.settle(store.head())
    page.goto("/signin")
    sign_in(page, email_of(live_server, developer), f.PASSWORD)

    follow(page, menu(page, "Developer"))
    follow(
        page,
        page.get_by_role("navigation", name="Developer console").get_by_role(
            "link", name="Webhooks"
        ),
    )
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    check_page(page, "developer-webhooks")
    follow(page, page.get_by_role("link", name=f"Add a webhook to {name}"))
    check_page(page, "webhook-form")

    # A private address and no topic: each error next to its field, what was typed kept.
    page.get_by_label("URL").fill("https://10.1.2.3/hooks")
    follow(page, page.get_by_role("button", name="Add the webhook"))
    expect(page.locator("#url-error")).to_contain_text("points at a private address (10.1.2.3)")
    expect(page.locator("#topics-error")).to_contain_text("Choose at least one topic")
    assert page.get_by_label("URL").input_value() == "https://10.1.2.3/hooks"
    check_page(page, "webhook-form-errors")

    page.get_by_label("URL").fill(receiver.url())
    page.get_by_label(re.compile(r"^installation\.authorized")).check()
    page.get_by_label(re.compile(r"^installation\.scopes_changed")).check()
    follow(page, page.get_by_role("button", name="Add the webhook"))
    expect(page.get_by_role("heading", level=1)).to_have_text("The webhook is added")
    secret = page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    check_page(page, "webhook-secret")
    follow(page, page.get_by_role("link", name=re.compile("I have copied it")))
    assert secret not in page.content()  # shown once
    expect(page.get_by_text("No deliveries yet")).to_be_visible()
    check_page(page, "webhook-log-empty")

    # Send a test event with the keyboard; the server's dispatcher delivers it.
    tab_to(page, "Send a test event")
    follow(page, page.locator(":focus"), key="Enter")
    expect(page.get_by_role("status").first).to_contain_text("A test event is on its way")
    (ping,) = receiver.wait_for(1)
    assert ping.verifies_with(secret)
    assert json.loads(ping.body)["type"] == "webhook.test"
    reload_until(page, page.locator(".delivery .badge--succeeded"))
    row = page.locator(".delivery").first
    expect(row).to_contain_text("HTTP 200")
    expect(row).to_contain_text("Attempts")
    check_page(page, "webhook-delivery-log")

    follow(page, row.get_by_role("link", name=re.compile("webhook.test")))
    expect(page.get_by_label("Payload", exact=True)).to_contain_text(
        '"message": "This is a test event'
    )
    expect(page.get_by_text(ping.message_id).first).to_be_visible()
    check_page(page, "webhook-delivery")
    follow(page, page.get_by_role("button", name="Replay"))
    expect(page.get_by_role("status").first).to_contain_text("sent again now")
    again = receiver.wait_for(2)[-1]
    assert again.message_id == ping.message_id and again.verifies_with(secret)

    # Rotate with the default overlap: both secrets sign the next delivery.
    follow(page, page.get_by_role("link", name="Back to the delivery log"))
    follow(page, page.get_by_role("link", name="Rotate the secret"))
    expect(page.get_by_text("every delivery carries two signatures")).to_be_visible()
    check_page(page, "webhook-rotate")
    follow(page, page.get_by_role("button", name="Rotate the secret"))
    rotated = page.get_by_label("Signing secret").input_value()
    assert rotated.startswith("whsec_") and rotated != secret
    follow(page, page.get_by_role("link", name=re.compile("I have copied it")))
    follow(page, page.get_by_role("button", name="Send a test event"))
    third = receiver.wait_for(3)[-1]
    assert third.verifies_with(rotated) and third.verifies_with(secret)

    # The app's webhooks list, then delete behind a confirmation.
    follow(page, page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=name))
    expect(page.get_by_role("link", name=receiver.url(), exact=True)).to_be_visible()
    check_page(page, "webhooks-of-app")
    follow(page, page.get_by_role("link", name=re.compile("^Delivery log")))
    follow(page, page.get_by_role("link", name="Delete"))
    check_page(page, "webhook-delete")
    follow(page, page.get_by_role("button", name="Delete the webhook"))
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    with live_server.app.state.projector.engine.connect() as conn:
        assert webhooks_of_app(conn, app_id) == []


def test_a_seller_is_warned_before_an_app_expires_and_marks_it_read(
    page: Any, live_server: LiveServer, shifted_clock: ShiftedClock
) -> None:
    n = next(_n)
    store = live_server.store
    seller = f.seller(store)
    name = f"Nearly Over {n}"
    # Installed for 30 days, 17 days ago: 13 days left, inside the 14-day warning.
    shifted_clock.offset = -timedelta(days=17)
    try:
        installation = f.active_installation(store, seller, f.app(store, name=name), "30d")
    finally:
        shifted_clock.offset = timedelta(0)
    live_server.settle(store.head())
    sweep(store, DueInstallations(live_server.app.state.projector.engine))
    warned = [e for e in store.events_of(installation) if isinstance(e, Installation.ExpiryWarned)]
    assert [e.days_before for e in warned] == [14]
    live_server.settle(store.head())

    page.goto("/signin")
    sign_in(page, email_of(live_server, seller), f.PASSWORD)
    expect(menu(page, "Notifications")).to_have_text(re.compile(r"Notifications\s*1 unread"))
    follow(page, menu(page, "My apps"))
    news = page.get_by_role("region", name=re.compile("1 unread notification"))
    expect(news).to_contain_text(f"Your authorization of {name} expires in")
    check_page(page, "my-apps-notifications")

    follow(page, menu(page, "Notifications"))
    item = page.get_by_role("listitem").filter(has_text=f"Expiry warning: {name}")
    expect(item).to_contain_text("Unread")
    check_page(page, "notifications")
    follow(page, item.get_by_role("link", name=f"Open {name}"))
    assert page.url.endswith(f"/my-apps/{installation}")
    expect(page.get_by_role("link", name="Renew")).to_be_visible()
    page.go_back()

    tab_to(page, "Mark as read")
    follow(page, page.locator(":focus"), key="Enter")
    expect(page.get_by_role("status").first).to_contain_text("Marked as read")
    expect(item).to_contain_text("Read")
    expect(menu(page, "Notifications")).to_have_text("Notifications")
    check_page(page, "notifications-read")


def test_a_seller_takes_back_an_optional_scope_and_the_developer_is_told(
    page: Any, live_server: LiveServer, receiver: Receiver
) -> None:
    n = next(_n)
    store = live_server.store
    developer = f.developer(store)
    name = f"Curious Connector {n}"
    app_id = f.app(
        store,
        developer,
        name=name,
        scopes=["orders.read"],
        optional_scopes=["inventory.read", "customers.read"],
    )
    made = webhooks.subscribe(
        store, live_server.app.state.secret_box, developer, app_id, receiver.url(),
        ["installation.scopes_changed"], allow_loopback=True,
    )  # fmt: skip
    seller = f.seller(store)
    installation = f.active_installation(store, seller, app_id)
    live_server.settle(store.head())
    page.goto("/signin")
    sign_in(page, email_of(live_server, seller), f.PASSWORD)
    page.goto(f"/my-apps/{installation}")
    expect(page.get_by_text(f"Required: {name} needs it to work")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("^Take back"))).to_have_count(2)
    check_page(page, "my-app-scopes")

    tab_to(page, "Take back")  # the first optional scope: inventory.read
    follow(page, page.locator(":focus"), key="Enter")
    expect(page.get_by_text(f"{name} loses it at once")).to_be_visible()
    check_page(page, "revoke-scope")
    tab_to(page, "Take it back")
    follow(page, page.locator(":focus"), key="Enter")
    expect(page.get_by_role("status").first).to_contain_text(f"{name} no longer has this access")
    expect(page.get_by_role("link", name=re.compile("^Take back"))).to_have_count(1)
    assert installations.installation(store, installation).scopes == ["orders.read", "customers.read"]  # fmt: skip

    (told,) = receiver.wait_for(1)
    assert told.verifies_with(made.secret)
    body = json.loads(told.body)
    assert body["type"] == "installation.scopes_changed"
    assert body["data"]["revoked"] == ["inventory.read"]
    assert body["data"]["scopes"] == ["orders.read", "customers.read"]
