"""The webhooks pages of the developer console, the seller's notifications and taking back
one optional scope, over HTTP (ASGI, no browser): the rules each form keeps, errors by
their field, secrets shown once, and another account's data never shown. Chromium drives
the same pages end to end in tests/browser/test_webhooks_and_notifications.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from typing import Any
from uuid import UUID

import pytest
from starlette.applications import Starlette

from application import installations, webhooks
from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.webhook import Webhook
from projections.notifications import seller_notifications
from projections.webhook_deliveries import delivery_log, webhooks_of_app
from tests import factories as f
from tests.integration.test_web_pages import Visitor, location, settle

SECRET = re.compile(r'id="signing-secret" type="text" readonly value="(whsec_[^"]+)"')


@pytest.fixture
def asgi(settings: Settings, store: Store) -> Iterator[Starlette]:
    loopback = settings.webhooks.model_copy(update={"allow_loopback": True})
    app = create_app(
        settings.model_copy(update={"webhooks": loopback}), store=store, consistency_timeout=5.0
    )
    yield app
    app.state.projector.engine.dispose()


@pytest.fixture
def visitors(asgi: Starlette, store: Store) -> Iterator[Any]:
    """Browsers over ASGI (tests/integration/test_web_pages.py's), signed in as told."""
    opened: list[Visitor] = []

    def visitor(account_id: UUID | None = None) -> Visitor:
        opened.append(Visitor(asgi, store))
        settle(asgi, store.head())
        return opened[-1].sign_in(account_id) if account_id else opened[-1]

    yield visitor
    for each in opened:
        each.close()


def hooks_of(asgi: Starlette, app_id: UUID) -> list[dict[str, Any]]:
    with asgi.state.projector.engine.connect() as conn:
        return webhooks_of_app(conn, app_id)


def subscribed(browser: Any, app_id: UUID, url: str, *topics: str) -> Any:
    fields = {"url": url, "topics": list(topics)}
    return browser.http.post(
        f"/developer/apps/{app_id}/webhooks/new", data={"csrf_token": browser.token, **fields}
    )


# --- webhooks ------------------------------------------------------------------------------
def test_a_webhook_is_added_its_secret_shown_once_and_errors_shown_by_their_field(
    visitors: Any, store: Store, asgi: Starlette
) -> None:
    developer = f.developer(store)
    app_id = f.app(store, developer, name="Hooked")
    browser = visitors(developer)
    overview = browser.get("/developer/webhooks")
    assert overview.status_code == 200 and "Hooked" in overview.text
    form = unescape(browser.get(f"/developer/apps/{app_id}/webhooks/new").text)
    assert "A seller granted more scopes or took one back." in form  # each topic explained
    assert 'value="installation.scopes_changed"' in form

    refused = subscribed(browser, app_id, "https://10.0.0.7/hooks")  # private, and no topic
    assert refused.status_code == 422
    text = unescape(refused.text)
    assert re.search(r'id="url-error">.*This URL points at a private address \(10\.0\.0\.7\)', text)
    assert re.search(r'id="topics-error">.*Choose at least one topic', text)
    assert 'value="https://10.0.0.7/hooks"' in text  # what was typed stays
    metadata = subscribed(browser, app_id, "https://169.254.169.254/", "incident.raised")
    assert metadata.status_code == 422 and "link-local" in metadata.text
    assert 'value="incident.raised" checked' in metadata.text
    assert hooks_of(asgi, app_id) == []

    made = subscribed(browser, app_id, "http://127.0.0.1:9/in", "incident.raised", "installation.scopes_changed")  # fmt: skip
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    secret = SECRET.search(made.text)
    assert secret, made.text
    (hook,) = hooks_of(asgi, app_id)
    assert hook["topics"] == ["incident.raised", "installation.scopes_changed"]
    page = browser.get(f"/developer/apps/{app_id}/webhooks/{hook['id']}")
    assert page.status_code == 200 and secret.group(1) not in page.text
    assert "No deliveries yet" in page.text
    assert "http://127.0.0.1:9/in" in browser.get(f"/developer/apps/{app_id}/webhooks").text


def test_a_webhook_is_edited_its_secret_rotated_with_an_overlap_then_deleted(
    visitors: Any, store: Store, asgi: Starlette, clock: FixedClock
) -> None:
    developer = f.developer(store)
    app_id = f.app(store, developer)
    browser = visitors(developer)
    subscribed(browser, app_id, "http://127.0.0.1:9/in", "incident.raised")
    (hook,) = hooks_of(asgi, app_id)
    base = f"/developer/apps/{app_id}/webhooks/{hook['id']}"

    edit = browser.get(f"{base}/edit")
    assert 'value="incident.raised" checked' in edit.text
    wrong = browser.post(f"{base}/edit", url="ftp://example.com/in")
    assert wrong.status_code == 422 and 'id="url-error"' in wrong.text
    assert 'id="topics-error"' in wrong.text
    fields = {"url": "http://127.0.0.1:9/v2", "topics": ["incident.resolved"]}
    saved = browser.http.post(f"{base}/edit", data={"csrf_token": browser.token, **fields})
    assert location(saved) == f"{base}?done=saved"
    changed = store.load(hook["id"], Webhook)
    assert changed is not None and (changed.url, changed.topics) == ("http://127.0.0.1:9/v2", ["incident.resolved"])  # fmt: skip

    confirm = unescape(browser.get(f"{base}/rotate-secret").text)
    assert "every delivery carries two signatures" in confirm
    assert browser.post(f"{base}/rotate-secret", overlap_hours="5").status_code == 422
    rotated = browser.post(f"{base}/rotate-secret", overlap_hours="1")
    new_secret = SECRET.search(rotated.text)
    assert rotated.status_code == 200 and new_secret
    assert "signed with both this secret and the previous one" in rotated.text
    after = store.load(hook["id"], Webhook)
    assert after is not None and after.previous_until == clock.now() + timedelta(hours=1)
    assert new_secret.group(1) not in browser.get(base).text

    assert "Nothing more is sent to it" in browser.get(f"{base}/delete").text
    assert store.load(hook["id"], Webhook).deleted_at is None  # type: ignore[union-attr]
    gone = browser.post(f"{base}/delete")
    assert location(gone) == f"/developer/apps/{app_id}/webhooks?done=deleted"
    assert hooks_of(asgi, app_id) == [] and browser.get(base).status_code == 404


def test_a_test_event_shows_in_the_delivery_log_with_its_payload(
    visitors: Any, store: Store, asgi: Starlette
) -> None:
    developer = f.developer(store)
    app_id = f.app(store, developer)
    browser = visitors(developer)
    subscribed(browser, app_id, "http://127.0.0.1:9/in", "incident.raised")
    (hook,) = hooks_of(asgi, app_id)
    base = f"/developer/apps/{app_id}/webhooks/{hook['id']}"
    sent = browser.post(f"{base}/test")
    assert location(sent) == f"{base}?done=test#deliveries"
    log = browser.get(f"{base}?done=test")
    assert "A test event is on its way" in log.text and "webhook.test" in log.text
    with asgi.state.projector.engine.connect() as conn:
        (delivery,), total = delivery_log(conn, hook["id"])
    assert total == 1 and delivery["status"] == "pending"
    assert browser.get(f"{base}?status=failed").text.count("webhook.test") == 0
    detail = unescape(browser.get(f"{base}/deliveries/{delivery['id']}").text)
    assert f'"webhook_id": "{hook["id"]}"' in detail and f"msg_{delivery['id'].hex}" in detail
    replayed = browser.post(f"{base}/deliveries/{delivery['id']}/replay")
    assert location(replayed) == f"{base}/deliveries/{delivery['id']}?done=replayed"
    assert browser.get(f"{base}/deliveries/{UUID(int=1)}").status_code == 404


def test_another_developers_webhooks_and_deliveries_are_not_found(
    visitors: Any, store: Store, asgi: Starlette
) -> None:
    owner = f.developer(store)
    app_id = f.app(store, owner, name="Guarded")
    browser = visitors(owner)
    subscribed(browser, app_id, "http://127.0.0.1:9/in", "incident.raised")
    (hook,) = hooks_of(asgi, app_id)
    test = webhooks.send_test(store, owner, app_id, hook["id"])
    settle(asgi, test.position)
    base = f"/developer/apps/{app_id}/webhooks/{hook['id']}"
    rival = visitors(f.developer(store))
    assert "Guarded" not in rival.get("/developer/webhooks").text
    for path in ("", "/edit", "/delete", "/rotate-secret", f"/deliveries/{test.delivery_id}"):
        assert rival.get(base + path).status_code == 404, path
    assert rival.get(f"/developer/apps/{app_id}/webhooks").status_code == 404
    assert rival.get(f"/developer/apps/{app_id}/webhooks/new").status_code == 404
    for path in ("/edit", "/delete", "/rotate-secret", "/test", f"/deliveries/{test.delivery_id}/replay"):  # fmt: skip
        assert rival.post(base + path, url="https://evil.example.com/", topics="incident.raised", overlap_hours="0").status_code == 404, path  # fmt: skip
    assert rival.post(f"/developer/apps/{app_id}/webhooks/new", url="https://evil.example.com/", topics="incident.raised").status_code == 404  # fmt: skip
    webhook = store.load(hook["id"], Webhook)
    assert webhook is not None and webhook.url == "http://127.0.0.1:9/in" and not webhook.is_deleted
    assert webhook.previous_until is None and len(hooks_of(asgi, app_id)) == 1
    seller = visitors(f.seller(store))
    assert seller.get("/developer/webhooks").status_code == 403


# --- notifications -------------------------------------------------------------------------
def test_a_seller_reads_expiry_warnings_and_marks_one_then_all_read(
    visitors: Any, store: Store, asgi: Starlette, clock: FixedClock
) -> None:
    seller = f.seller(store)
    first = f.active_installation(store, seller, f.app(store, name="Soon Gone"), "30d")
    second = f.active_installation(store, seller, f.app(store, name="Also Soon"), "30d")
    clock.advance(timedelta(days=17))
    for installation in (first, second):
        installations.warn_expiry(store, installation)
    browser = visitors(seller)  # signed in now (sessions last hours, not weeks)
    home = browser.get("/")
    assert re.search(r"Notifications <span class=\"unread-count\">2<", home.text)
    listed = unescape(browser.get("/notifications").text)
    assert "Expiry warning: Soon Gone" in listed and "expires in 13 days" in listed
    assert f'href="/my-apps/{first}/renew"' in listed and f'href="/my-apps/{first}"' in listed
    my_apps = unescape(browser.get("/my-apps").text)
    assert "2 unread notifications" in my_apps and "Also Soon" in my_apps

    with asgi.state.projector.engine.connect() as conn:
        items, _, _ = seller_notifications(conn, seller)
    by_installation = {item["installation_id"]: item["id"] for item in items}
    other = visitors(f.seller(store))
    assert other.post(f"/notifications/{by_installation[first]}/read").status_code == 404
    assert "Soon Gone" not in other.get("/notifications").text

    marked = browser.post(f"/notifications/{by_installation[first]}/read", next="/notifications?show=unread")  # fmt: skip
    assert location(marked) == "/notifications?show=unread&done=read"
    unread = unescape(browser.get("/notifications?show=unread").text)
    assert "Also Soon" in unread and "Soon Gone" not in unread
    assert 'class="unread-count">1<' in unread
    everything = browser.post("/notifications/read-all", next="https://evil.example.com/")
    assert location(everything) == "/notifications?done=all_read"  # never another site
    with asgi.state.projector.engine.connect() as conn:
        assert seller_notifications(conn, seller)[2] == 0
    assert "unread-count" not in browser.get("/notifications").text
    assert "unread notification" not in browser.get("/my-apps").text


# --- consent -------------------------------------------------------------------------------
def test_a_seller_takes_back_an_optional_scope_but_never_a_required_one(
    visitors: Any, store: Store, asgi: Starlette
) -> None:
    seller = f.seller(store)
    app_id = f.app(
        store, name="Nosy", scopes=["orders.read"], optional_scopes=["customers.read", "inventory.read"]
    )  # fmt: skip
    installation = f.active_installation(store, seller, app_id)
    browser = visitors(seller)
    page = unescape(browser.get(f"/my-apps/{installation}").text)
    revoke = f"/my-apps/{installation}/scopes/customers.read/revoke"
    assert f'href="{revoke}"' in page and "/scopes/inventory.read/revoke" in page
    assert "/scopes/orders.read/revoke" not in page
    assert "Required: Nosy needs it to work. To end it, cancel the app." in page

    confirm = unescape(browser.get(revoke).text)
    assert "loses it at once" in confirm and "The developer is told" in confirm
    assert "customers.read" in installations.installation(store, installation).scopes
    other = visitors(f.seller(store))
    assert other.get(revoke).status_code == 404 and other.post(revoke).status_code == 404
    done = browser.post(revoke)
    assert location(done) == (
        f"/my-apps/{installation}?done=scope_revoked&scope=customers.read#access"
    )
    assert installations.installation(store, installation).scopes == ["orders.read", "inventory.read"]  # fmt: skip
    after = unescape(browser.get(f"/my-apps/{installation}?done=scope_revoked&scope=customers.read").text)  # fmt: skip
    assert "Nosy no longer has this access: See your customers" in after
    assert "/scopes/customers.read/revoke" not in after
    assert browser.get(revoke).status_code == 404  # not granted any more
    required = browser.post(f"/my-apps/{installation}/scopes/orders.read/revoke")
    assert required.status_code == 422 and "cancel the installation" in required.text
    assert installations.installation(store, installation).scopes == ["orders.read", "inventory.read"]  # fmt: skip
    installations.cancel(store, seller, installation)
    settle(asgi, store.head())
    cancelled = browser.get(f"/my-apps/{installation}").text
    assert "Take back" not in cancelled and "Required:" not in cancelled
