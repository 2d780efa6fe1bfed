"""OAuth through the real application (create_app): the in-store flow, then the developer's
authorization link, token exchange, cancel, and the seller's authorization record."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from tests import factories as f
from tests.integration.test_oauth_http import CHALLENGE, REDIRECT, VERIFIER, form_fields


@pytest.fixture
def api(settings: Settings, store: Store) -> Iterator[TestClient]:
    app = create_app(settings, store=store, consistency_timeout=5.0)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def sign_up(api: TestClient, role: str, email: str, **extra: str) -> dict[str, str]:
    body = {"role": role, "email": email, "password": f.PASSWORD, "name": email.split("@")[0]}
    created = api.post("/v1/accounts", json={**body, **extra})
    assert created.status_code == 201, created.text
    session = api.post("/v1/sessions", json={"email": email, "password": f.PASSWORD})
    assert session.status_code == 201, session.text
    return {"Authorization": f"Bearer {session.json()['token']}"}


class Developer:
    def __init__(self, api: TestClient) -> None:
        self.headers = sign_up(api, "developer", "dev@example.com")
        listed = api.post("/v1/apps", json=f.listing(), headers=self.headers)
        assert listed.status_code == 201, listed.text
        body = listed.json()
        self.app_id = body["id"]
        self.client_id = body["client_id"]
        self.secret = body["client_secret"]

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def install_in_store(api: TestClient, dev: Developer, seller: dict[str, str]) -> str:
    """Install now → info → confirm → review conditions → authorize, over the JSON API."""
    pending = api.post(
        "/v1/installations",
        json={
            "app_id": dev.app_id,
            "duration": "30d",
            "contact_email": "ops@shop.example.com",
            "contact_phone": "+14155550101",
        },
        headers=seller,
    )
    assert pending.status_code == 201, pending.text
    assert pending.json()["status"] == "pending_authorization"
    installation_id: str = pending.json()["id"]
    done = api.post(f"/v1/installations/{installation_id}/authorize", headers=seller)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "active"
    return installation_id


def link_code(api: TestClient, dev: Developer, email: str) -> str:
    """The developer's authorization link for a seller whose installation is live."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": dev.client_id,
            "redirect_uri": REDIRECT,
            "state": "s1",
            "scope": "orders.read",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
    )
    page = api.get(f"/oauth/authorize?{query}")
    assert "Select your account type" in page.text
    fields = form_fields(page.text)
    page = api.post(
        "/oauth/authorize",
        data={**fields, "step": "login", "email": email, "password": f.PASSWORD},
    )
    assert "Review the authorization conditions" in page.text, page.text
    done = api.post("/oauth/authorize", data={**form_fields(page.text), "decision": "allow"})
    assert done.status_code == 302
    answer = {k: v[0] for k, v in parse_qs(urlsplit(done.headers["location"]).query).items()}
    assert answer["state"] == "s1"
    return answer["code"]


def tokens_for(api: TestClient, dev: Developer, code: str) -> dict[str, Any]:
    issued = api.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER,
        },
        headers=dev.basic(),
    )
    assert issued.status_code == 200, issued.text
    body: dict[str, Any] = issued.json()
    return body


def introspect(api: TestClient, dev: Developer, token: str) -> dict[str, Any]:
    answer = api.post("/oauth/introspect", data={"token": token}, headers=dev.basic())
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def test_in_store_install_then_authorization_link_then_cancel(
    api: TestClient, store: Store, clock: FixedClock
) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "shop@example.com", account_type="local")
    installation_id = install_in_store(api, dev, seller)
    tokens = tokens_for(api, dev, link_code(api, dev, "shop@example.com"))
    assert tokens["installation_id"] == installation_id
    assert introspect(api, dev, tokens["access_token"])["active"] is True

    record = api.get(f"/v1/me/apps/{installation_id}", headers=seller)
    assert record.status_code == 200, record.text
    assert [a["action"] for a in record.json()["token_activity"]] == ["issued"]
    assert record.json()["via"] == "store"

    cancelled = api.post(f"/v1/me/apps/{installation_id}/cancel", headers=seller)
    assert cancelled.status_code == 200, cancelled.text
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert introspect(api, dev, token) == {"active": False, "reason": "cancelled"}
    refresh = api.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=dev.basic(),
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    renew = api.post(
        f"/v1/me/apps/{installation_id}/renew", json={"duration": "30d"}, headers=seller
    )
    assert renew.status_code == 409
    record = api.get(f"/v1/me/apps/{installation_id}", headers=seller).json()
    assert record["status"] == "cancelled"
    assert record["token_activity"][-1]["action"] == "revoked"


def test_cancelled_token_is_refused_by_the_sync_events_api(api: TestClient, store: Store) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "sync@example.com")
    installation_id = install_in_store(api, dev, seller)
    tokens = tokens_for(api, dev, link_code(api, dev, "sync@example.com"))
    event = {
        "event_id": "e-1",
        "installation_id": installation_id,
        "app_id": dev.app_id,
        "kind": "failure",
        "area": "orders",
        "error_code": "TIMEOUT",
        "message": "upstream timed out",
        "object_ids": ["o-1"],
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    accepted = api.post("/v1/sync-events", json=event, headers=bearer)
    assert accepted.status_code in (200, 201, 202), accepted.text
    api.post(f"/v1/me/apps/{installation_id}/cancel", headers=seller)
    refused = api.post("/v1/sync-events", json={**event, "event_id": "e-2"}, headers=bearer)
    assert refused.status_code == 401, refused.text


def test_seller_b_cannot_see_or_act_on_seller_a_installation(api: TestClient) -> None:
    dev = Developer(api)
    seller_a = sign_up(api, "seller", "a@example.com")
    seller_b = sign_up(api, "seller", "b@example.com")
    installation_id = install_in_store(api, dev, seller_a)
    assert api.get(f"/v1/me/apps/{installation_id}", headers=seller_b).status_code == 404
    assert api.post(f"/v1/me/apps/{installation_id}/cancel", headers=seller_b).status_code == 404
    renew = api.post(
        f"/v1/me/apps/{installation_id}/renew", json={"duration": "30d"}, headers=seller_b
    )
    assert renew.status_code == 404
    assert api.get(f"/v1/me/apps/{installation_id}", headers=seller_a).status_code == 200
    # a developer session is not a seller's
    assert api.get(f"/v1/me/apps/{installation_id}", headers=dev.headers).status_code == 403


def test_no_secret_in_clear_in_the_event_store_or_read_models(
    api: TestClient, store: Store, settings: Settings
) -> None:
    dev = Developer(api)
    seller = sign_up(api, "seller", "clear@example.com")
    install_in_store(api, dev, seller)
    code = link_code(api, dev, "clear@example.com")
    tokens = tokens_for(api, dev, code)
    refreshed = api.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=dev.basic(),
    ).json()
    secrets = [
        code,
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
        dev.secret,
        seller["Authorization"].split()[1],
        f.PASSWORD,
    ]
    blob = b"".join(n.state for n in store.application.recorder.select_notifications(1, 100_000))
    for secret in secrets:
        assert secret.encode() not in blob
    if settings.database_url.startswith("sqlite"):
        # events and read models share the file; WAL mode keeps recent pages beside it
        path = Path(settings.database_url.split(":///", 1)[1])
        files = list(path.parent.glob(path.name + "*"))
        assert path in files
        for file in files:
            raw = file.read_bytes()
            for secret in secrets:
                assert secret.encode() not in raw


def test_openapi_documents_the_oauth_endpoints(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    for path in ("/oauth/authorize", "/oauth/token", "/oauth/introspect", "/oauth/revoke"):
        assert path in document["paths"]
    assert "get" in document["paths"]["/v1/me/apps/{installation_id}"]
    assert "client_secret_basic" in document["components"]["securitySchemes"]
