"""The HTTP API end to end (ASGI, no network): flows, errors, isolation, ops routes."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from application import sync_events
from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.incident import SyncEvent
from tests import factories as f

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

OPS = {"Authorization": "Bearer ops-secret"}
PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}


class Api:
    """A client with the store behind it, and shortcuts for accounts."""

    def __init__(self, client: TestClient, store: Store, clock: FixedClock) -> None:
        self.http, self.store, self.clock = client, store, clock
        self._n = 0

    def account(self, role: str = "seller") -> dict[str, str]:
        """Signs up and logs in; returns Authorization headers (and the id)."""
        self._n += 1
        email = f"{role}{self._n}@example.com"
        body: dict[str, Any] = {"role": role, "email": email, "password": f.PASSWORD, "name": "N"}
        created = self.http.post("/v1/accounts", json=body)
        assert created.status_code == 201, created.text
        login = self.http.post("/v1/sessions", json={"email": email, "password": f.PASSWORD})
        assert login.status_code == 201, login.text
        return {"Authorization": f"Bearer {login.json()['token']}", "id": created.json()["id"]}

    def list_app(self, developer: dict[str, str], **overrides: Any) -> dict[str, Any]:
        r = self.http.post("/v1/apps", json=f.listing(**overrides), headers=auth(developer))
        assert r.status_code == 201, r.text
        return dict(r.json())

    def install(self, seller: dict[str, str], app_id: str, duration: str = "30d") -> str:
        body = {
            "app_id": app_id,
            "duration": duration,
            "contact_email": "ops@shop.example.com",
            "contact_phone": "+14155550101",
        }
        r = self.http.post("/v1/installations", json=body, headers=auth(seller))
        assert r.status_code == 201, r.text
        installation_id = str(r.json()["id"])
        r = self.http.post(f"/v1/installations/{installation_id}/authorize", headers=auth(seller))
        assert r.status_code == 200, r.text
        return installation_id


def auth(account: dict[str, str]) -> dict[str, str]:
    return {"Authorization": account["Authorization"]}


@pytest.fixture
def api(settings: Settings, clock: FixedClock) -> Iterator[Api]:
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        yield Api(client, app.state.store, clock)
    app.state.store.close()
    app.state.projector.engine.dispose()


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


# --- accounts and sessions ---------------------------------------------------------------------
def test_sign_up_log_in_and_log_out(api: Api) -> None:
    seller = api.account("seller")
    assert api.http.get("/v1/me/apps", headers=auth(seller)).status_code == 200
    assert api.http.delete("/v1/sessions/current", headers=auth(seller)).status_code == 204
    assert_problem(api.http.get("/v1/me/apps", headers=auth(seller)), 401)


def test_sign_up_shape_and_errors(api: Api) -> None:
    body = {
        "role": "seller",
        "email": "Shop@Example.com",
        "password": f.PASSWORD,
        "name": "My Shop",
        "account_type": "cross_border",
    }
    created = api.http.post("/v1/accounts", json=body)
    assert created.status_code == 201
    assert {k: created.json()[k] for k in ("role", "email", "name", "account_type")} == {
        "role": "seller",
        "email": "shop@example.com",
        "name": "My Shop",
        "account_type": "cross_border",
    }
    assert_problem(api.http.post("/v1/accounts", json=body), 409)
    assert_problem(api.http.post("/v1/accounts", json={**body, "email": "nope"}), 422, "email")
    assert_problem(
        api.http.post("/v1/accounts", json={**body, "password": "short"}), 422, "password"
    )
    assert_problem(api.http.post("/v1/accounts", json={**body, "role": "admin"}), 422, "role")
    malformed = api.http.post("/v1/accounts", content=b'{"role": ', headers=JSON)
    assert_problem(malformed, 400)
    assert_problem(api.http.post("/v1/accounts", json=[1, 2]), 422, "body")
    wrong = {"email": "shop@example.com", "password": "wrong password!"}
    assert_problem(api.http.post("/v1/sessions", json=wrong), 401)


def test_missing_bad_and_wrong_role_tokens(api: Api) -> None:
    developer = api.account("developer")
    assert_problem(api.http.get("/v1/me/apps"), 401)
    assert_problem(api.http.get("/v1/me/apps", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(api.http.get("/v1/me/apps", headers={"Authorization": "Basic eDp5"}), 401)
    assert_problem(api.http.get("/v1/me/apps", headers=auth(developer)), 403)
    seller = api.account("seller")
    assert_problem(api.http.post("/v1/apps", json=f.listing(), headers=auth(seller)), 403)


# --- catalog -------------------------------------------------------------------------------
def test_catalog_search_detail_and_related(api: Api) -> None:
    developer = api.account("developer")
    listed = api.list_app(developer, name="Label Maker", categories=["shipping-fulfillment"])
    assert listed["client_secret"].startswith("cs_") and listed["client_id"].startswith("app_")
    api.list_app(developer, name="Other Labels", categories=["shipping-fulfillment"])
    page = api.http.get("/v1/apps", params={"q": "label", "page_size": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    assert page["items"][0]["name"] == "Label Maker"
    assert page["facets"]["categories"]["shipping-fulfillment"] == 2
    filtered = api.http.get(
        "/v1/apps", params=[("category", "shipping-fulfillment"), ("category", "analytics")]
    )
    assert filtered.json()["total"] == 2
    detail = api.http.get("/v1/apps/label-maker").json()
    assert detail["id"] == listed["id"]
    assert detail["contact"]["mailto"] == "mailto:support@ordersync.example.com"
    assert [r["name"] for r in detail["related"]] == ["Other Labels"]
    assert "client_secret" not in detail and "redirect_uris" not in detail
    assert api.http.get(f"/v1/apps/{listed['id']}").json()["slug"] == "label-maker"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"page_size": "101"}, "page_size"),
        ({"sort": "cheapest"}, "sort"),
        ({"category": "gardening"}, "category.0"),
        ({"platform": "myspace"}, "platform.0"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_catalog_rejects_bad_query_parameters(api: Api, params: dict[str, str], field: str) -> None:
    assert_problem(api.http.get("/v1/apps", params=params), 422, field)


def test_unknown_app_and_unknown_route_are_404(api: Api) -> None:
    assert_problem(api.http.get("/v1/apps/no-such-app"), 404)
    assert_problem(api.http.get("/v1/apps/00000000-0000-0000-0000-000000000000"), 404)
    assert_problem(api.http.get("/v1/nothing-here"), 404)
    assert_problem(api.http.put("/v1/apps"), 405)


def test_developer_changes_and_delists_only_own_apps(api: Api) -> None:
    developer, rival = api.account("developer"), api.account("developer")
    listed = api.list_app(developer, name="Mine")
    path = f"/v1/apps/{listed['id']}"
    changed = api.http.patch(path, json={"tagline": "Better tagline"}, headers=auth(developer))
    assert changed.status_code == 200 and changed.json()["tagline"] == "Better tagline"
    assert changed.json()["client_secret"] is None
    assert api.http.get(path).json()["tagline"] == "Better tagline"  # read your write
    assert_problem(api.http.patch(path, json={"tagline": "x"}, headers=auth(rival)), 404)
    assert_problem(api.http.delete(path, headers=auth(rival)), 404)
    assert_problem(
        api.http.patch(path, json={"scopes": ["root"]}, headers=auth(developer)), 422, "scopes"
    )
    assert_problem(
        api.http.patch(path, json={"colour": "red"}, headers=auth(developer)), 422, "colour"
    )
    assert_problem(api.http.patch("/v1/apps/not-a-uuid", json={}, headers=auth(developer)), 404)
    assert api.http.delete(path, headers=auth(developer)).status_code == 204
    assert_problem(api.http.get(path), 404)
    assert api.http.get("/v1/apps").json()["total"] == 0


def test_rotating_the_client_secret_shows_the_new_one_once_and_the_old_one_stops(
    api: Api,
) -> None:
    developer, rival = api.account("developer"), api.account("developer")
    listed = api.list_app(developer, name="Rotating")
    path = f"/v1/apps/{listed['id']}/rotate-secret"

    def token_call(secret: str) -> Any:
        return api.http.post(
            "/oauth/token",
            data={"grant_type": "authorization_code", "code": "nope"},
            auth=(listed["client_id"], secret),
        )

    assert token_call(listed["client_secret"]).json()["error"] == "invalid_grant"
    rotated = api.http.post(path, headers=auth(developer))
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["client_id"] == listed["client_id"]
    assert body["client_secret"].startswith("cs_")
    assert body["client_secret"] != listed["client_secret"]
    # The old secret no longer authenticates the client; the new one does.
    assert token_call(listed["client_secret"]).json()["error"] == "invalid_client"
    assert token_call(body["client_secret"]).json()["error"] == "invalid_grant"
    assert_problem(api.http.post(path, headers=auth(rival)), 404)
    seller = api.account("seller")
    assert_problem(api.http.post(path, headers=auth(seller)), 403)


def test_recently_viewed_is_per_seller(api: Api) -> None:
    developer, seller, other = api.account("developer"), api.account(), api.account()
    first = api.list_app(developer, name="First")
    second = api.list_app(developer, name="Second")
    for app in (first, second, first):
        api.clock.advance(timedelta(seconds=1))
        api.http.get(f"/v1/apps/{app['slug']}", headers=auth(seller))
    viewed = api.http.get("/v1/me/recently-viewed", headers=auth(seller)).json()
    assert [i["name"] for i in viewed["items"]] == ["First", "Second"]
    assert api.http.get("/v1/me/recently-viewed", headers=auth(other)).json()["items"] == []


# --- install flow, my apps, incidents --------------------------------------------------------
def test_install_shows_conditions_then_authorize_renew_cancel(api: Api) -> None:
    developer, seller = api.account("developer"), api.account()
    app = api.list_app(developer, scopes=["orders.read", "fulfillment.write"])
    body = {
        "app_id": app["id"],
        "duration": "90d",
        "contact_email": "ops@shop.example.com",
        "contact_phone": "+1 415 555 0101",
    }
    pending = api.http.post("/v1/installations", json=body, headers=auth(seller))
    assert pending.status_code == 201
    p = pending.json()
    assert p["status"] == "pending_authorization" and p["position"] > 0
    assert p["conditions"]["scopes"][0] == {
        "scope": "orders.read",
        "description": "See your orders, including buyer shipping addresses",
        "access": "read",
    }
    assert p["conditions"]["can_change"] == ["Ship orders and upload tracking numbers"]
    assert p["conditions"]["expires_at_if_authorized_now"] == "2026-04-01T00:00:00Z"
    listed = api.http.get("/v1/me/apps", headers=auth(seller)).json()["items"]
    assert [i["status"] for i in listed] == ["pending_authorization"]

    path = f"/v1/installations/{p['id']}"
    active = api.http.post(f"{path}/authorize", headers=auth(seller)).json()
    assert active["status"] == "active" and active["expires_at"] == "2026-04-01T00:00:00Z"
    assert_problem(api.http.post(f"{path}/authorize", headers=auth(seller)), 409)
    assert_problem(api.http.post("/v1/installations", json=body, headers=auth(seller)), 409)
    mine = api.http.get("/v1/me/apps", params={"status": "active"}, headers=auth(seller)).json()
    assert mine["items"][0]["installation_id"] == p["id"]
    assert mine["items"][0]["days_left"] == 90
    assert api.http.get(f"/v1/apps/{app['id']}").json()["installs"] == 1

    me = f"/v1/me/apps/{p['id']}"
    renewed = api.http.post(f"{me}/renew", json={"duration": "30d"}, headers=auth(seller))
    assert renewed.json()["expires_at"] == "2026-05-01T00:00:00Z"
    assert_problem(
        api.http.post(f"{me}/renew", json={"duration": "7d"}, headers=auth(seller)), 422, "duration"
    )
    assert api.http.post(f"{me}/cancel", headers=auth(seller)).json()["status"] == "cancelled"
    assert_problem(
        api.http.post(f"{me}/renew", json={"duration": "30d"}, headers=auth(seller)), 409
    )
    assert_problem(api.http.post(f"{me}/cancel", headers=auth(seller)), 409)
    cancelled = api.http.get("/v1/me/apps", params={"status": "cancelled"}, headers=auth(seller))
    assert cancelled.json()["total"] == 1
    assert api.http.get(f"/v1/apps/{app['id']}").json()["installs"] == 0

    dev_view = api.http.get("/v1/developer/installations", headers=auth(developer)).json()
    assert dev_view["total"] == 1 and dev_view["items"][0]["seller"] is None


def test_install_rejects_unknown_apps_and_bad_input(api: Api) -> None:
    seller = api.account()
    body = {
        "app_id": "00000000-0000-0000-0000-000000000000",
        "duration": "30d",
        "contact_email": "ops@shop.example.com",
        "contact_phone": "+14155550101",
    }
    assert_problem(api.http.post("/v1/installations", json=body, headers=auth(seller)), 404)
    developer = api.account("developer")
    app = api.list_app(developer, durations=["30d"])
    body["app_id"] = app["id"]
    bad_phone = {**body, "contact_phone": "call me"}
    assert_problem(
        api.http.post("/v1/installations", json=bad_phone, headers=auth(seller)),
        422,
        "contact_phone",
    )
    not_offered = {**body, "duration": "365d"}
    assert_problem(
        api.http.post("/v1/installations", json=not_offered, headers=auth(seller)), 422, "duration"
    )
    assert_problem(
        api.http.post("/v1/installations", json={**body, "app_id": "x"}, headers=auth(seller)),
        422,
        "app_id",
    )


def raise_incident(api: Api, installation_id: str, event_id: str, area: str = "orders") -> str:
    result = sync_events.record_sync_event(
        api.store,
        SyncEvent(
            event_id=event_id,
            installation_id=__import__("uuid").UUID(installation_id),
            kind="failure",
            area=area,
            occurred_at=api.clock.now(),
            error_code="E_TIMEOUT",
            message="timed out",
            object_ids=["order-1"],
        ),
    )
    return str(result.incident_ids[0])


def test_incidents_list_acknowledge_resolve(api: Api) -> None:
    developer, seller = api.account("developer"), api.account()
    installation_id = api.install(seller, api.list_app(developer)["id"])
    incident_id = raise_incident(api, installation_id, "ev-1")
    position = api.store.application.recorder.max_notification_id()
    listed = api.http.get(
        "/v1/me/incidents",
        params={"status": "open"},
        headers={**auth(seller), "X-Appstore-Min-Position": str(position)},
    ).json()
    assert [i["id"] for i in listed["items"]] == [incident_id]
    assert listed["items"][0]["object_ids"] == ["order-1"]
    mine = api.http.get("/v1/me/apps", headers=auth(seller)).json()["items"][0]
    assert mine["open_incidents"] == 1
    path = f"/v1/me/incidents/{incident_id}"
    assert (
        api.http.post(f"{path}/acknowledge", headers=auth(seller)).json()["status"]
        == "acknowledged"
    )
    assert_problem(api.http.post(f"{path}/acknowledge", headers=auth(seller)), 409)
    assert api.http.post(f"{path}/resolve", headers=auth(seller)).json()["status"] == "resolved"
    assert_problem(api.http.post(f"{path}/resolve", headers=auth(seller)), 409)
    resolved = api.http.get(
        "/v1/me/incidents",
        params={"status": "resolved", "installation_id": installation_id},
        headers=auth(seller),
    )
    assert resolved.json()["total"] == 1
    assert_problem(
        api.http.get("/v1/me/incidents", params={"status": "closed"}, headers=auth(seller)),
        422,
        "status",
    )
    assert_problem(
        api.http.get("/v1/me/incidents", headers={**auth(seller), "X-Appstore-Min-Position": "x"}),
        400,
    )


def test_every_me_route_isolates_sellers(api: Api) -> None:
    """Another seller's installation or incident is not found (404) and never listed."""
    developer, owner, other = api.account("developer"), api.account(), api.account()
    app = api.list_app(developer)
    installation_id = api.install(owner, app["id"])
    incident_id = raise_incident(api, installation_id, "ev-9")
    api.http.get(f"/v1/apps/{app['id']}", headers=auth(owner))
    pending = api.http.post(
        "/v1/installations",
        json={
            "app_id": api.list_app(developer)["id"],
            "duration": "30d",
            "contact_email": "a@b.example.com",
            "contact_phone": "+14155550101",
        },
        headers=auth(owner),
    ).json()["id"]
    wait = {"X-Appstore-Min-Position": str(api.store.application.recorder.max_notification_id())}
    for path in ("/v1/me/apps", "/v1/me/incidents", "/v1/me/recently-viewed"):
        assert api.http.get(path, headers={**auth(owner), **wait}).json()["items"], path
        assert api.http.get(path, headers={**auth(other), **wait}).json()["items"] == [], path
    filtered = api.http.get(
        "/v1/me/incidents", params={"installation_id": installation_id}, headers=auth(other)
    )
    assert filtered.json()["total"] == 0
    for method, path, body in [
        ("POST", f"/v1/me/apps/{installation_id}/renew", {"duration": "30d"}),
        ("POST", f"/v1/me/apps/{installation_id}/cancel", None),
        ("POST", f"/v1/me/incidents/{incident_id}/acknowledge", None),
        ("POST", f"/v1/me/incidents/{incident_id}/resolve", None),
        ("POST", f"/v1/installations/{pending}/authorize", None),
        ("POST", f"/v1/installations/{pending}/decline", None),
    ]:
        assert_problem(api.http.request(method, path, json=body, headers=auth(other)), 404)
    # and the owner's things are untouched
    assert (
        api.http.get("/v1/me/apps", params={"status": "active"}, headers=auth(owner)).json()[
            "total"
        ]
        == 1
    )
    assert (
        api.http.post(f"/v1/installations/{pending}/decline", headers=auth(owner)).status_code
        == 200
    )


# --- ops ---------------------------------------------------------------------------------------
def test_audit_routes_need_the_ops_token(api: Api) -> None:
    developer = api.account("developer")
    app = api.list_app(developer)
    api.http.patch(f"/v1/apps/{app['id']}", json={"tagline": "v2"}, headers=auth(developer))
    assert_problem(api.http.get("/v1/audit/events"), 401)
    assert_problem(api.http.get("/v1/audit/events", headers={"Authorization": "Bearer no"}), 401)
    history = api.http.get(f"/v1/audit/aggregates/{app['id']}/events", headers=OPS).json()
    assert [e["event_type"] for e in history["items"]] == [
        "AppListing.Listed",
        "AppListing.Updated",
    ]
    assert history["items"][0]["payload"]["client_secret_hash"] == "<redacted>"
    at_v1 = api.http.get(f"/v1/audit/aggregates/{app['id']}", params={"version": 1}, headers=OPS)
    assert at_v1.json()["state"]["details"]["tagline"] != "v2"
    beyond = api.http.get(f"/v1/audit/aggregates/{app['id']}", params={"version": 3}, headers=OPS)
    assert_problem(beyond, 404)
    latest = api.http.get(f"/v1/audit/aggregates/{app['id']}", headers=OPS).json()
    assert latest["version"] == 2 and latest["state"]["details"]["tagline"] == "v2"
    log = api.http.get("/v1/audit/events", params={"after": 1, "limit": 2}, headers=OPS).json()
    assert [e["position"] for e in log["items"]] == [2, 3] and log["next_after"] == 3
    unknown = "/v1/audit/aggregates/00000000-0000-0000-0000-000000000000/events"
    assert_problem(api.http.get(unknown, headers=OPS), 404)
    assert_problem(api.http.get("/v1/audit/aggregates/xyz/events", headers=OPS), 404)
    assert_problem(api.http.get("/v1/audit/events", params={"limit": 0}, headers=OPS), 422, "limit")


def test_audit_routes_are_disabled_without_an_ops_token(
    settings: Settings, clock: FixedClock
) -> None:
    app = create_app(
        settings.model_copy(update={"ops_token": None}), clock=clock, run_projections=False
    )
    with TestClient(app) as client:
        assert_problem(client.get("/v1/audit/events", headers=OPS), 403)
    app.state.store.close()


def test_health_readiness_metrics_and_openapi(api: Api) -> None:
    api.list_app(api.account("developer"))
    assert api.http.get("/healthz").json() == {"status": "ok"}
    ready = api.http.get("/readyz").json()
    assert ready["status"] == "ok"
    assert set(ready["projections"]) == {
        "catalog",
        "my_apps",
        "incidents",
        "webhook_deliveries",
        "notifications",
        "reviews",
    }
    assert all(p["lag"] == 0 for p in ready["projections"].values())
    metrics = api.http.get("/metrics").text
    assert (
        'appstore_http_requests_total{method="POST",route="/v1/apps",status="201"} 1.0' in metrics
    )
    assert 'appstore_projection_lag_events{projection="catalog"} 0.0' in metrics
    assert "appstore_events_appended " in metrics
    spec = api.http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    for path in ("/v1/apps", "/v1/me/apps", "/v1/me/incidents/{id}/resolve", "/v1/audit/events"):
        assert path in spec["paths"]
    parameters = {p["name"]: p for p in spec["paths"]["/v1/apps"]["get"]["parameters"]}
    assert parameters["category"]["schema"]["type"] == "array"
    assert parameters["category"]["explode"] is True


def test_metrics_count_answer_cache_hits_and_misses(api: Api) -> None:
    api.list_app(api.account("developer"))
    for _ in range(3):  # nothing written meanwhile: the same answer at the same position
        assert api.http.get("/v1/apps", params={"q": "parcel"}).status_code == 200
    metrics = api.http.get("/metrics").text
    assert 'appstore_answer_cache_total{cache="catalog",outcome="miss"} 1.0' in metrics
    assert 'appstore_answer_cache_total{cache="catalog",outcome="hit"} 2.0' in metrics


def test_readiness_reports_lag_when_projections_do_not_run(
    settings: Settings, clock: FixedClock
) -> None:
    app = create_app(settings, clock=clock, run_projections=False, consistency_timeout=0.05)
    with TestClient(app) as client:
        f.app(app.state.store)
        ready = client.get("/readyz").json()
        assert ready["projections"]["catalog"]["lag"] == ready["head"] > 0
        stale = client.get("/v1/apps", headers={"X-Appstore-Min-Position": str(ready["head"])})
        assert stale.headers["X-Appstore-Stale"] == "true"
    app.state.store.close()


def test_the_app_can_be_started_twice(settings: Settings, clock: FixedClock) -> None:
    app = create_app(settings, clock=clock)
    for _ in range(2):
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
    app.state.store.close()


def _tracked_objects_held(root: object) -> int:
    """How many objects the garbage collector walks to get through what `root` holds (its
    class, functions and modules aside)."""
    import gc
    import types

    seen, pending, count = {id(root)}, [root], 0
    while pending:
        for child in gc.get_referents(pending.pop()):
            skip = isinstance(child, type | types.ModuleType | types.FunctionType)
            if id(child) in seen or skip or not gc.is_tracked(child):
                continue
            seen.add(id(child))
            count += 1
            pending.append(child)
    return count


def test_the_api_keeps_its_cached_answers_as_the_json_it_sends(api: Api) -> None:
    """Cached answers as object graphs (~100 objects each, 4,096 of them) made each full
    garbage collection of a serving process stall every request for 100-200 ms."""
    for n in range(3):
        api.list_app(api.account("developer"), name=f"Parcel Tracker {n}")
    cache = api.http.app.state.catalog_answers  # type: ignore[attr-defined]
    words = ("parcel", "tracker", "parc", "track", "parcel tracker")
    for word in words:
        for sort in ("popular", "name", "new"):
            found = api.http.get("/v1/apps", params={"q": word, "sort": sort})
            assert found.status_code == 200 and found.json()["total"] == 3
    slug = api.http.get("/v1/apps").json()["items"][0]["slug"]
    assert api.http.get(f"/v1/apps/{slug}").json()["slug"] == slug
    assert len(cache) == len(words) * 3 + 2  # and the browse without words, the detail
    assert _tracked_objects_held(cache) < 10 * len(cache)
