"""Consent per scope and the in-store install's code, over HTTP on the real application.

The app requires `fulfillment.write` and asks for `orders.read` and `inventory.read` as
optional scopes. Store install → redirect_url with a code → token; the code used twice;
an optional scope left out; one revoked (introspection and API calls lose it at once);
required scopes neither left out nor revoked; re-authorization asks only for new scopes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from api.consistency import MIN_POSITION_HEADER
from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from tests import factories as f
from tests.integration.test_oauth_app import sign_up
from tests.integration.test_oauth_http import form_fields

REDIRECT = "https://ordersync.example.com/oauth/callback"
OTHER_REDIRECT = "https://ordersync.example.com/oauth/other"
REQUIRED = "fulfillment.write"
OPTIONAL = ["orders.read", "inventory.read"]
ALL = "orders.read fulfillment.write inventory.read"  # the vocabulary's order


@pytest.fixture
def api(settings: Settings, store: Store) -> Iterator[TestClient]:
    app = create_app(settings, store=store, consistency_timeout=5.0)
    with TestClient(app, follow_redirects=False) as client:
        yield client


class Developer:
    def __init__(self, api: TestClient) -> None:
        self.api = api
        self.headers = sign_up(api, "developer", "dev@example.com")
        listing = f.listing(
            scopes=[REQUIRED], optional_scopes=OPTIONAL, redirect_uris=[REDIRECT, OTHER_REDIRECT]
        )
        listed = api.post("/v1/apps", json=listing, headers=self.headers)
        assert listed.status_code == 201, listed.text
        body = listed.json()
        self.app_id, self.client_id, self.secret = (
            body["id"],
            body["client_id"],
            body["client_secret"],
        )

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def exchange(self, code: str, **extra: str) -> Any:
        data = {"grant_type": "authorization_code", "code": code, **extra}
        return self.api.post("/oauth/token", data=data, headers=self.basic())

    def refresh(self, token: str, **extra: str) -> Any:
        data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
        return self.api.post("/oauth/token", data=data, headers=self.basic())

    def introspect(self, token: str) -> dict[str, Any]:
        answer = self.api.post("/oauth/introspect", data={"token": token}, headers=self.basic())
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def report(self, installation_id: str, access_token: str, area: str, event_id: str) -> Any:
        event = {
            "event_id": event_id,
            "installation_id": installation_id,
            "kind": "failure",
            "area": area,
            "error_code": "TIMEOUT",
            "message": "upstream timed out",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
        bearer = {"Authorization": f"Bearer {access_token}"}
        return self.api.post("/v1/sync-events", json=event, headers=bearer)


def install(api: TestClient, dev: Developer, seller: dict[str, str], **body: Any) -> Any:
    return api.post(
        "/v1/installations",
        json={
            "app_id": dev.app_id,
            "duration": "30d",
            "contact_email": "ops@shop.example.com",
            "contact_phone": "+14155550101",
            **body,
        },
        headers=seller,
    )


def authorize(api: TestClient, installation_id: str, seller: dict[str, str]) -> dict[str, Any]:
    done = api.post(f"/v1/installations/{installation_id}/authorize", headers=seller)
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def store_install(
    api: TestClient, dev: Developer, seller: dict[str, str], **body: Any
) -> tuple[str, dict[str, Any]]:
    """Install now → authorize in the store → the developer's code → tokens."""
    pending = install(api, dev, seller, **body)
    assert pending.status_code == 201, pending.text
    installation_id: str = pending.json()["id"]
    code = query_of(authorize(api, installation_id, seller)["redirect_url"])["code"][0]
    issued = dev.exchange(code)
    assert issued.status_code == 200, issued.text
    tokens: dict[str, Any] = issued.json()
    return installation_id, tokens


def test_store_install_redirects_to_the_app_with_a_code_for_a_token(api: TestClient) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "shop@example.com")
    pending = install(api, dev, seller)
    assert pending.status_code == 201, pending.text
    installation_id = pending.json()["id"]
    assert pending.json()["scopes"] == ALL.split()  # optional ones are granted unless left out

    done = authorize(api, installation_id, seller)
    assert done["status"] == "active" and done["id"] == installation_id
    url = done["redirect_url"]
    assert url.startswith(REDIRECT + "?")  # the app's first registered redirect URI
    params = query_of(url)
    assert set(params) == {"code", "iss"}  # no state: the store started the flow
    issuer = api.get("/.well-known/oauth-authorization-server").json()["issuer"]
    assert params["iss"] == [issuer] and params["code"][0].startswith("ac_")
    code = params["code"][0]

    anonymous = api.post("/oauth/token", data={"grant_type": "authorization_code", "code": code})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    elsewhere = dev.exchange(code, redirect_uri=OTHER_REDIRECT)
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    downgrade = dev.exchange(code, code_verifier="v" * 50)  # no challenge was sent
    assert downgrade.status_code == 400 and downgrade.json()["error"] == "invalid_grant"

    issued = dev.exchange(code, redirect_uri=REDIRECT)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    assert tokens["installation_id"] == installation_id and tokens["scope"] == ALL
    seen = dev.introspect(tokens["access_token"])
    assert seen["active"] is True and seen["scope"] == ALL
    assert dev.report(installation_id, tokens["access_token"], "orders", "e-1").status_code == 202


def test_a_store_code_used_twice_is_refused_and_revokes_what_it_issued(api: TestClient) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "twice@example.com")
    installation_id = install(api, dev, seller).json()["id"]
    code = query_of(authorize(api, installation_id, seller)["redirect_url"])["code"][0]
    first = dev.exchange(code)
    assert first.status_code == 200, first.text
    again = dev.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    for token in (first.json()["access_token"], first.json()["refresh_token"]):
        assert dev.introspect(token) == {"active": False, "reason": "revoked"}


def test_an_optional_scope_left_out_at_install_is_not_in_the_token(api: TestClient) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "lean@example.com")
    pending = install(api, dev, seller, scopes=["orders.read", REQUIRED])
    assert pending.status_code == 201, pending.text
    conditions = [s["scope"] for s in pending.json()["conditions"]["scopes"]]
    assert conditions == ["orders.read", REQUIRED]
    installation_id = pending.json()["id"]
    code = query_of(authorize(api, installation_id, seller)["redirect_url"])["code"][0]
    tokens = dev.exchange(code).json()
    assert tokens["scope"] == "orders.read fulfillment.write"
    assert dev.introspect(tokens["access_token"])["scope"] == "orders.read fulfillment.write"
    refused = dev.report(installation_id, tokens["access_token"], "inventory", "e-1")
    assert refused.status_code == 403, refused.text
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert dev.report(installation_id, tokens["access_token"], "orders", "e-2").status_code == 202
    widen = dev.refresh(tokens["refresh_token"], scope="inventory.read")
    assert widen.status_code == 400 and widen.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("scopes", "title"),
    [
        (["orders.read"], "Required scope"),  # the required one left out
        ([REQUIRED, "finance.read"], "Invalid input"),  # not asked for
        ([REQUIRED, "root.write"], "Unknown scope"),
    ],
)
def test_install_scopes_must_keep_every_required_one_and_ask_nothing_else(
    api: TestClient, scopes: list[str], title: str
) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "picky@example.com")
    refused = install(api, dev, seller, scopes=scopes)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["title"] == title
    assert refused.json()["errors"][0]["field"] == "scopes"


def test_revoking_one_scope_narrows_every_live_token_at_once(api: TestClient) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "revoke@example.com")
    installation_id, tokens = store_install(api, dev, seller)
    access = tokens["access_token"]
    assert dev.report(installation_id, access, "orders", "e-1").status_code == 202

    revoked = api.post(f"/v1/me/apps/{installation_id}/scopes/orders.read/revoke", headers=seller)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["scopes"] == [REQUIRED, "inventory.read"]

    for token in (access, tokens["refresh_token"]):
        seen = dev.introspect(token)
        assert seen["active"] is True and seen["scope"] == "fulfillment.write inventory.read"
    refused = dev.report(installation_id, access, "orders", "e-2")
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="orders.read"'
    )
    assert dev.report(installation_id, access, "refunds", "e-3").status_code == 403
    assert dev.report(installation_id, access, "inventory", "e-4").status_code == 202
    # a refresh does not bring the scope back, and cannot ask for it
    refreshed = dev.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200 and refreshed.json()["scope"] == (
        "fulfillment.write inventory.read"
    )
    asked = dev.refresh(refreshed.json()["refresh_token"], scope="orders.read")
    assert asked.status_code == 400 and asked.json()["error"] == "invalid_scope"

    mine = api.get("/v1/me/apps", headers=seller).json()["items"]
    assert [i["scopes"] for i in mine] == [[REQUIRED, "inventory.read"]]
    record = api.get(f"/v1/me/apps/{installation_id}", headers=seller).json()
    assert [s["scope"] for s in record["scopes"]] == [REQUIRED, "inventory.read"]
    history = record["history"]
    assert [h["event"] for h in history] == ["Installed", "Authorized", "ScopeRevoked"]
    assert history[1]["scopes"] == ALL.split()  # what the seller consented to, and when
    assert history[2]["scope"] == "orders.read" and history[2]["at"]
    assert history[2]["by"] == record["authorized_by"]["seller_id"]


def test_required_scopes_cannot_be_revoked_nor_other_sellers_touched(api: TestClient) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "owner@example.com")
    stranger = sign_up(api, "seller", "stranger@example.com")
    installation_id, _ = store_install(api, dev, seller)
    path = f"/v1/me/apps/{installation_id}/scopes"

    required = api.post(f"{path}/{REQUIRED}/revoke", headers=seller)
    assert required.status_code == 422 and required.json()["title"] == "Required scope"
    assert required.json()["errors"] == [
        {"field": "scope", "message": required.json()["detail"].split(": ", 1)[1]}
    ]
    never = api.post(f"{path}/finance.read/revoke", headers=seller)
    assert never.status_code == 422 and never.json()["title"] == "Scope not granted"
    unknown = api.post(f"{path}/root.write/revoke", headers=seller)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "scope"
    assert api.post(f"{path}/orders.read/revoke", headers=stranger).status_code == 404
    assert api.post(f"{path}/orders.read/revoke").status_code == 401
    once = api.post(f"{path}/orders.read/revoke", headers=seller)
    assert once.status_code == 200
    twice = api.post(f"{path}/orders.read/revoke", headers=seller)
    assert twice.status_code == 422  # no longer granted
    api.post(f"/v1/me/apps/{installation_id}/cancel", headers=seller)
    late = api.post(f"{path}/inventory.read/revoke", headers=seller)
    assert late.status_code == 409


# --- the developer's authorization link: the conditions page, scope by scope ---------------
def link(dev: Developer, scope: str | None) -> str:
    params = {
        "response_type": "code",
        "client_id": dev.client_id,
        "redirect_uri": REDIRECT,
        "state": "s-1",
        **({"scope": scope} if scope else {}),
    }
    return "/oauth/authorize?" + urlencode(params)


def log_in_through_link(api: TestClient, dev: Developer, email: str, scope: str | None) -> Any:
    api.cookies.clear()  # another browser: the pages ask the seller to log in
    page = api.get(link(dev, scope))
    assert page.status_code == 200, page.text
    return api.post(
        "/oauth/authorize",
        data={**form_fields(page.text), "step": "login", "email": email, "password": f.PASSWORD},
    )


def choices(page: Any) -> dict[str, bool]:
    """The scope checkboxes of the conditions page: scope → ticked."""
    found = re.finditer(
        r'<input type="checkbox" id="scope-[^"]+" name="scopes" value="([^"]+)"( checked)?>',
        page.text,
    )
    return {unescape(m.group(1)): bool(m.group(2)) for m in found}


def decide(api: TestClient, page: Any, ticked: list[str]) -> Any:
    fields = [*form_fields(page.text).items(), ("decision", "allow")]
    fields += [("scopes", s) for s in ticked]
    return api.post(
        "/oauth/authorize",
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def code_of(answer: Any) -> str:
    assert answer.status_code == 302, answer.text
    params = query_of(answer.headers["location"])
    assert params["state"] == ["s-1"]
    return params["code"][0]


def test_a_link_install_shows_optional_scopes_ticked_and_the_seller_may_untick(
    api: TestClient, store: Store
) -> None:
    dev = Developer(api)
    sign_up(api, "seller", "linked@example.com")
    page = log_in_through_link(api, dev, "linked@example.com", None)
    page = api.post(
        "/oauth/authorize",
        data={
            **form_fields(page.text),
            "step": "confirm",
            "duration": "30d",
            "contact_email": "a@b.co",
            "contact_phone": "+14155550100",
        },
    )
    assert "Review the authorization conditions" in page.text
    assert choices(page) == {"orders.read": True, "inventory.read": True}
    assert "Ship orders and upload tracking numbers" in page.text and "(required)" in page.text
    assert page.text.count("(optional)</span>") == 2

    tokens = dev.exchange(code_of(decide(api, page, ["inventory.read"])), redirect_uri=REDIRECT)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "fulfillment.write inventory.read"
    seller = {**sign_in(api, "linked@example.com"), MIN_POSITION_HEADER: str(store.head())}
    mine = api.get("/v1/me/apps", headers=seller).json()["items"]
    assert mine[0]["scopes"] == [REQUIRED, "inventory.read"]  # the read model follows


def test_unticking_every_scope_asked_is_asked_again_not_authorized(api: TestClient) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "none@example.com")
    page = log_in_through_link(api, dev, "none@example.com", "orders.read")  # optional only
    page = api.post(
        "/oauth/authorize",
        data={
            **form_fields(page.text),
            "step": "confirm",
            "duration": "30d",
            "contact_email": "a@b.co",
            "contact_phone": "+14155550100",
        },
    )
    again = decide(api, page, [])
    assert again.status_code == 422 and "grant at least one scope, or decline" in again.text
    assert choices(again) == {"orders.read": True}
    tokens = dev.exchange(code_of(decide(api, again, ["orders.read"])), redirect_uri=REDIRECT)
    assert tokens.json()["scope"] == "orders.read"
    installation_id = form_fields(again.text)["installation_id"]
    record = api.get(f"/v1/me/apps/{installation_id}", headers=seller).json()
    assert [h["event"] for h in record["history"]] == ["Installed", "Authorized"]
    assert record["history"][1]["scopes"] == ["orders.read"]


def sign_in(api: TestClient, email: str) -> dict[str, str]:
    session = api.post("/v1/sessions", json={"email": email, "password": f.PASSWORD})
    return {"Authorization": f"Bearer {session.json()['token']}"}


def test_reauthorization_asks_only_for_the_scopes_not_granted_before(
    api: TestClient, store: Store
) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "again@example.com")
    installation_id, _ = store_install(api, dev, seller, scopes=[REQUIRED])

    # The developer's link now asks for orders.read as well: only that one is asked.
    page = log_in_through_link(api, dev, "again@example.com", f"{REQUIRED} orders.read")
    assert "asks for more access" in page.text
    assert choices(page) == {"orders.read": True}
    assert "See your orders" in page.text
    assert "Ship orders and upload tracking numbers" not in page.text  # granted before
    assert "stock levels" not in page.text  # not asked for

    # Unticked: nothing granted, the code carries what the installation grants.
    declined = dev.exchange(code_of(decide(api, page, [])), redirect_uri=REDIRECT)
    assert declined.json()["scope"] == REQUIRED
    record = api.get(f"/v1/me/apps/{installation_id}", headers=seller).json()
    assert [s["scope"] for s in record["scopes"]] == [REQUIRED]

    page = log_in_through_link(api, dev, "again@example.com", f"{REQUIRED} orders.read")
    granted = dev.exchange(code_of(decide(api, page, ["orders.read"])), redirect_uri=REDIRECT)
    assert granted.json()["scope"] == "orders.read fulfillment.write"
    record = api.get(f"/v1/me/apps/{installation_id}", headers=seller).json()
    assert [s["scope"] for s in record["scopes"]] == ["orders.read", REQUIRED]
    caught_up = {**seller, MIN_POSITION_HEADER: str(store.head())}
    mine = api.get("/v1/me/apps", headers=caught_up).json()["items"]
    assert mine[0]["scopes"] == ["orders.read", REQUIRED]  # the read model follows
    consent = record["history"][-1]
    assert consent["event"] == "ScopesGranted" and consent["scopes"] == ["orders.read"]
    assert consent["by"] == record["authorized_by"]["seller_id"]

    # Asked again for what it has: nothing to choose, the conditions it keeps.
    page = log_in_through_link(api, dev, "again@example.com", f"{REQUIRED} orders.read")
    assert "asks for more access" not in page.text and choices(page) == {}
    assert dev.exchange(code_of(decide(api, page, [])), redirect_uri=REDIRECT).status_code == 200

    # A revoked scope asked for again is asked again, never granted silently.
    api.post(f"/v1/me/apps/{installation_id}/scopes/orders.read/revoke", headers=seller)
    page = log_in_through_link(api, dev, "again@example.com", "orders.read")
    assert choices(page) == {"orders.read": True}


def test_optional_scopes_are_part_of_the_listing(api: TestClient) -> None:
    dev = Developer(api)
    detail = api.get(f"/v1/apps/{dev.app_id}").json()
    assert detail["scopes"] == [REQUIRED] and detail["optional_scopes"] == OPTIONAL
    both = api.patch(
        f"/v1/apps/{dev.app_id}", json={"scopes": [REQUIRED, "orders.read"]}, headers=dev.headers
    )
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "optional_scopes"
    moved = api.patch(
        f"/v1/apps/{dev.app_id}",
        json={"scopes": [REQUIRED, "orders.read"], "optional_scopes": ["inventory.read"]},
        headers=dev.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["optional_scopes"] == ["inventory.read"]
    unknown = api.patch(
        f"/v1/apps/{dev.app_id}", json={"optional_scopes": ["root"]}, headers=dev.headers
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "optional_scopes"
