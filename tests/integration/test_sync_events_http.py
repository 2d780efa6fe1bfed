"""POST /v1/sync-events: connectors without Kafka report sync runs with their access token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from tests.integration.test_oauth_app import (
    Developer,
    install_in_store,
    link_code,
    sign_up,
    tokens_for,
)


@pytest.fixture
def api(settings: Settings, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store=store), follow_redirects=False) as client:
        yield client


def event(installation_id: str, event_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "event_id": event_id,
        "installation_id": installation_id,
        "kind": "failure",
        "area": "orders",
        "error_code": "SKU_NOT_FOUND",
        "message": "3 orders reference unknown SKUs",
        "object_ids": ["o-1"],
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    return {**body, **overrides}


def connector(
    api: TestClient, dev: Developer, email: str
) -> tuple[str, dict[str, str], dict[str, str]]:
    """A seller with the developer's app installed, and the app's bearer header for it."""
    seller = sign_up(api, "seller", email)
    installation_id = install_in_store(api, dev, seller)
    api.cookies.clear()  # a new browser: the authorization pages ask this seller to log in
    tokens = tokens_for(api, dev, link_code(api, dev, email))
    return installation_id, seller, {"Authorization": f"Bearer {tokens['access_token']}"}


def test_a_reported_failure_is_an_incident_the_seller_sees_and_a_success_resolves_it(
    api: TestClient,
) -> None:
    dev = Developer(api)
    installation_id, seller, app = connector(api, dev, "shop@example.com")
    accepted = api.post("/v1/sync-events", json=event(installation_id, "e-1"), headers=app)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["duplicate"] is False
    again = api.post("/v1/sync-events", json=event(installation_id, "e-1"), headers=app)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    api.post("/v1/sync-events", json=event(installation_id, "e-2"), headers=app)

    listed = api.get("/v1/me/incidents", headers=seller).json()
    (incident,) = listed["items"]
    assert incident["status"] == "open" and incident["count"] == 2
    assert incident["error_code"] == "SKU_NOT_FOUND"

    fixed = event(installation_id, "e-3", kind="success", occurred_at="2026-01-01T00:05:00Z")
    assert api.post("/v1/sync-events", json=fixed, headers=app).status_code == 202
    resolved = api.get("/v1/me/incidents?status=resolved", headers=seller).json()
    assert [i["id"] for i in resolved["items"]] == [incident["id"]]


def test_a_token_reports_only_for_its_own_installation(api: TestClient) -> None:
    dev = Developer(api)
    mine, _, app = connector(api, dev, "mine@example.com")
    other, other_seller, _ = connector(api, dev, "other@example.com")
    refused = api.post("/v1/sync-events", json=event(other, "x-1"), headers=app)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "installation_id"
    assert api.get("/v1/me/incidents", headers=other_seller).json()["total"] == 0
    wrong_app = event(mine, "x-2", app_id="00000000-0000-0000-0000-000000000001")
    assert api.post("/v1/sync-events", json=wrong_app, headers=app).status_code == 403


def test_bad_reports_are_named_and_unauthenticated_ones_refused(api: TestClient) -> None:
    dev = Developer(api)
    installation_id, _, app = connector(api, dev, "shop@example.com")
    no_code = event(installation_id, "b-1", error_code="")
    bad = api.post("/v1/sync-events", json=no_code, headers=app)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    naive = api.post(
        "/v1/sync-events",
        json=event(installation_id, "b-2", occurred_at="2026-01-01T00:00:00"),
        headers=app,
    )
    assert naive.status_code == 422 and "occurred_at" in naive.text
    before_year_one = api.post(  # year 1 at +00:01 is before year 1 in UTC (found by fuzzing)
        "/v1/sync-events",
        json=event(installation_id, "b-5", occurred_at="0001-01-01T00:00:00+00:01"),
        headers=app,
    )
    assert before_year_one.status_code == 422 and "occurred_at" in before_year_one.text
    malformed = {**app, "Content-Type": "application/json"}
    assert api.post("/v1/sync-events", content=b"{nope", headers=malformed).status_code == 400
    anonymous = api.post("/v1/sync-events", json=event(installation_id, "b-3"))
    assert anonymous.status_code == 401
    forged = {"Authorization": "Bearer not-a-token"}
    assert (
        api.post("/v1/sync-events", json=event(installation_id, "b-4"), headers=forged).status_code
        == 401
    )
