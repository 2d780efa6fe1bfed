"""The seller's and developer's pages over HTTP (ASGI, no browser): who may see what,
another account's data never shown, and the rules the install, renew and cancel forms keep.
Chromium drives the same pages end to end in tests/browser/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from application import accounts, installations, listings, sync_events
from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.incident import SyncEvent
from tests import factories as f


@pytest.fixture
def asgi(settings: Settings, store: Store) -> Iterator[Starlette]:
    app = create_app(settings, store=store, consistency_timeout=5.0)
    yield app
    app.state.projector.engine.dispose()


class Visitor:
    """One browser: its cookies, and the CSRF token its forms carry."""

    def __init__(self, app: Starlette, store: Store) -> None:
        self.http = TestClient(app, follow_redirects=False)
        self.http.__enter__()
        self.store = store
        self.token = ""

    def get(self, path: str) -> Any:
        page = self.http.get(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if found:
            self.token = found.group(1)
        return page

    def post(self, path: str, **fields: str) -> Any:
        if not self.token:
            self.get("/signin")
        return self.http.post(path, data={"csrf_token": self.token, **fields})

    def sign_in(self, account_id: UUID) -> Visitor:
        email = accounts.account(self.store, account_id).email
        signed = self.post("/signin", email=email, password=f.PASSWORD, next="/")
        assert signed.status_code == 303, signed.text
        self.get("/")  # signing in rotates the CSRF token: the forms from now on carry the new one
        return self

    def close(self) -> None:
        self.http.__exit__(None, None, None)


@pytest.fixture
def visitors(asgi: Starlette, store: Store) -> Iterator[Any]:
    opened: list[Visitor] = []

    def visitor(account_id: UUID | None = None) -> Visitor:
        opened.append(Visitor(asgi, store))
        settle(asgi, store.head())  # the pages show what was written before them
        return opened[-1].sign_in(account_id) if account_id else opened[-1]

    yield visitor
    for each in opened:
        each.close()


def location(response: Any) -> str:
    assert response.status_code in (302, 303), response.text
    return str(response.headers["location"])


def settle(asgi: Starlette, position: int | None) -> None:
    assert asgi.state.projector.wait(position or 0, 5)


def failure(installation_id: UUID, event_id: str) -> SyncEvent:
    return SyncEvent(
        event_id=event_id,
        installation_id=installation_id,
        kind="failure",
        area="orders",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        error_code="E_SKU",
        message="unknown SKU",
        object_ids=["o-1"],
    )


def test_pages_ask_to_sign_in_and_come_back_afterwards(visitors: Any, store: Store) -> None:
    anonymous = visitors()
    for path in ("/my-apps", "/developer", "/apps/some-app/install?from=search"):
        target = urlsplit(location(anonymous.get(path)))
        assert target.path == "/signin"
        assert parse_qs(target.query)["next"] == [path]
    seller = f.seller(store)
    email = accounts.account(store, seller).email
    signed = anonymous.post("/signin", email=email, password=f.PASSWORD, next="/my-apps")
    assert location(signed) == "/my-apps"
    assert anonymous.get("/my-apps").status_code == 200


def test_each_role_is_refused_the_other_roles_pages(visitors: Any, store: Store) -> None:
    app_id = f.app(store)
    slug = listings.app(store, app_id).details["slug"]
    developer = visitors(f.developer(store))
    for path in ("/my-apps", f"/apps/{slug}/install", f"/my-apps/{app_id}/renew"):
        page = developer.get(path)
        assert page.status_code == 403 and "is not for this account" in page.text
    assert developer.post(f"/apps/{slug}/install", step="confirm").status_code == 403
    seller = visitors(f.seller(store))
    for path in ("/developer", "/developer/apps/new", "/developer/installations"):
        assert seller.get(path).status_code == 403
    refused = seller.post("/developer/apps/new", name="Sneaky")
    assert refused.status_code == 403 and listings.app(store, app_id).details["name"] != "Sneaky"


def test_another_sellers_installation_and_incidents_are_not_found(
    visitors: Any, store: Store, asgi: Starlette
) -> None:
    owner = f.seller(store)
    app_id = f.app(store, name="Private Sync")
    installation = f.active_installation(store, owner, app_id)
    position = sync_events.record_sync_event(store, failure(installation, "e1")).position
    other = visitors(f.seller(store))  # the app is serving (its projector running) from here
    settle(asgi, position)
    (incident_id,) = installations.installation(store, installation).incidents
    for path in ("", "/renew", "/cancel"):
        assert other.get(f"/my-apps/{installation}{path}").status_code == 404
    assert other.post(f"/my-apps/{installation}/cancel").status_code == 404
    assert other.post(f"/my-apps/{installation}/renew", duration="90d", step="renew").status_code == 404  # fmt: skip
    acknowledge = f"/my-apps/{installation}/incidents/{incident_id}/acknowledge"
    assert other.post(acknowledge).status_code == 404
    assert "Private Sync" not in other.get("/my-apps").text
    assert other.get("/my-apps/not-a-uuid").status_code == 404
    # Nothing happened to the owner's installation.
    found = installations.installation(store, installation)
    assert found.status.value == "active" and found.incidents[incident_id].status.value == "open"
    # Its owner may; an incident under another of their installations is not found either.
    owner_browser = visitors(owner)
    second = f.active_installation(store, owner, f.app(store))
    wrong_pair = f"/my-apps/{second}/incidents/{incident_id}/resolve"
    assert owner_browser.post(wrong_pair).status_code == 404
    assert location(owner_browser.post(acknowledge)).startswith(
        f"/my-apps/{installation}?done=acknowledged"
    )
    again = owner_browser.post(acknowledge)
    assert again.status_code == 409 and "already acknowledged" in again.text


def test_another_developers_app_is_not_found(visitors: Any, store: Store) -> None:
    owner = f.developer(store)
    listed = listings.list_app(store, owner, f.listing(name="Owned"))
    installation = f.active_installation(store, f.seller(store), listed.id)
    sync_events.record_sync_event(store, failure(installation, "owned-1"))
    rival = visitors(f.developer(store))
    for path in ("/developer/installations", "/developer/incidents"):
        page = rival.get(f"{path}?app={listed.id}")
        assert page.status_code == 200 and str(installation) not in page.text
    assert str(installation) in visitors(owner).get(f"/developer/incidents?app={listed.id}").text
    for path in ("", "/edit", "/rotate-secret"):
        assert rival.get(f"/developer/apps/{listed.id}{path}").status_code == 404
    assert rival.post(f"/developer/apps/{listed.id}/rotate-secret").status_code == 404
    assert rival.post(f"/developer/apps/{listed.id}/edit", name="Taken over").status_code == 404
    app = listings.app(store, listed.id)
    assert app.details["name"] == "Owned"
    assert (
        rival.get("/developer").status_code == 200 and "Owned" not in rival.get("/developer").text
    )


def test_rotating_the_secret_on_the_page_shows_the_new_one_once(
    visitors: Any, store: Store
) -> None:
    owner = f.developer(store)
    listed = listings.list_app(store, owner, f.listing(name="Rotor"))
    old_hash = listings.app(store, listed.id).client_secret_hash
    browser = visitors(owner)
    confirm = browser.get(f"/developer/apps/{listed.id}/rotate-secret")
    assert "stops working at once" in confirm.text
    shown = browser.post(f"/developer/apps/{listed.id}/rotate-secret")
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    secret = re.search(r'id="client-secret" type="text" readonly value="(cs_[^"]+)"', shown.text)
    assert secret and secret.group(1) != listed.client_secret
    assert listings.app(store, listed.id).client_secret_hash != old_hash
    assert secret.group(1) not in browser.get(f"/developer/apps/{listed.id}").text


def test_the_new_forms_need_their_csrf_token(visitors: Any, store: Store) -> None:
    seller = f.seller(store)
    installation = f.active_installation(store, seller, f.app(store))
    browser = visitors(seller)
    forged = browser.http.post(f"/my-apps/{installation}/cancel", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert installations.installation(store, installation).status.value == "active"


def conditions_of(page: Any) -> str:
    found = re.search(r'name="installation_id" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_installing_from_the_store_walks_info_confirm_conditions(
    visitors: Any, store: Store
) -> None:
    seller = f.seller(store)
    app_id = f.app(store, name="Walker", scopes=["orders.read", "products.write"])
    browser = visitors(seller)
    path = "/apps/walker/install"
    info = browser.get(path)
    assert info.status_code == 200 and "Installation information" in info.text
    wrong = browser.post(path, step="info", duration="7d", contact_email="x", contact_phone="1")
    assert wrong.status_code == 422
    for field in ("duration", "contact_email", "contact_phone"):
        assert f'id="{field}-error"' in wrong.text
    fields = {"duration": "90d", "contact_email": "ops@shop.example.com", "contact_phone": "+14155550100"}  # fmt: skip
    confirm = browser.post(path, step="info", **fields)
    assert "Confirm the installation" in confirm.text and "90 days" in confirm.text
    conditions = browser.post(path, step="confirm", **fields)
    text = unescape(conditions.text)
    assert "See your orders, including buyer shipping addresses" in text
    assert "Create, change and delete your products and prices" in text
    pending = UUID(conditions_of(conditions))
    assert installations.installation(store, pending).status.value == "pending_authorization"

    # Not authorizing declines it and goes back to the app.
    assert location(browser.post(path, step="decide", installation_id=str(pending))) == (
        "/apps/walker"
    )
    assert installations.installation(store, pending).status.value == "declined"
    conditions = browser.post(path, step="confirm", **fields)
    installation = UUID(conditions_of(conditions))
    done = browser.post(path, step="decide", installation_id=str(installation), decision="allow")
    # On to the app, with a one-time code for its developer (SPEC: in-store install).
    to_app = urlsplit(location(done))
    assert to_app._replace(query="").geturl() == f.listing()["redirect_uris"][0]
    assert set(parse_qs(to_app.query)) == {"code", "iss"}
    assert installations.installation(store, installation).status.value == "active"
    assert "Walker" in browser.get(f"/my-apps/{installation}").text

    # Active already: told so, with the way to My apps.
    again = browser.get(path)
    assert "Walker is already active in your shop" in again.text
    assert f'href="/my-apps/{installation}"' in again.text
    assert browser.post(path, step="confirm", **fields).status_code == 409
    # Someone else's pending installation cannot be authorized from here.
    theirs = installations.install(
        store, f.seller(store), app_id, "30d", "a@b.example.com", "+14155550100"
    ).id
    stolen = browser.post(path, step="decide", installation_id=str(theirs), decision="allow")
    assert stolen.status_code == 404
    assert installations.installation(store, theirs).status.value == "pending_authorization"


def test_renewing_shows_the_new_expiry_before_renewing(
    visitors: Any, store: Store, clock: FixedClock
) -> None:
    seller = f.seller(store)
    installation = f.active_installation(store, seller, f.app(store, name="Renewer"), "30d")
    forever = f.active_installation(store, seller, f.app(store), "unlimited")
    browser = visitors(seller)
    choose = browser.get(f"/my-apps/{installation}/renew")
    # 30 days from the fixed clock's 2026-01-01, then a year from that expiry.
    assert "until 31 January 2027" in choose.text
    review = browser.post(f"/my-apps/{installation}/renew", step="review", duration="365d")
    assert "31 January 2027, 00:00 UTC" in review.text
    assert installations.installation(store, installation).duration.value == "30d"
    refused = browser.post(f"/my-apps/{installation}/renew", step="review", duration="7d")
    assert refused.status_code == 422 and 'id="duration-error"' in refused.text
    done = browser.post(f"/my-apps/{installation}/renew", step="renew", duration="365d")
    assert location(done) == f"/my-apps/{installation}?done=renewed"
    renewed = installations.installation(store, installation)
    assert renewed.expires_at == datetime(2027, 1, 31, tzinfo=UTC)
    assert browser.get(f"/my-apps/{forever}/renew").status_code == 409


def test_cancelling_is_confirmed_first_and_then_final(visitors: Any, store: Store) -> None:
    seller = f.seller(store)
    installation = f.active_installation(store, seller, f.app(store, name="Leaver"))
    browser = visitors(seller)
    confirm = browser.get(f"/my-apps/{installation}/cancel")
    assert "Access stops at once" in confirm.text and "developer loses access" in confirm.text
    assert installations.installation(store, installation).status.value == "active"
    done = browser.post(f"/my-apps/{installation}/cancel")
    assert location(done) == f"/my-apps/{installation}?done=cancelled"
    assert installations.installation(store, installation).status.value == "cancelled"
    listed = browser.get("/my-apps?status=cancelled")
    assert "Leaver" in listed.text and f"/my-apps/{installation}/renew" not in listed.text
    assert browser.post(f"/my-apps/{installation}/cancel").status_code == 409
