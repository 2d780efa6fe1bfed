"""What an anonymous attacker sends is refused cleanly (issue 10 #4, #5, #9-#11, over ASGI):
deep or huge JSON, oversized bodies, other media types, control characters, credentials in
URLs, a forged Host header, planted or replayed CSRF tokens; and every answer carries the
security headers. (Slow clients and the body limit on a real server: tests/e2e/
test_slow_clients.py; log-in throttling: test_logins.py.)"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from application import listings
from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import ServeSettings, Settings
from tests import factories as f
from tests.integration.test_oauth_http import Dev, form_fields, post, redirect_params
from tests.integration.test_sync_events_http import Developer, connector, event

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app(settings: Settings, store: Store) -> Iterator[Starlette]:
    small = settings.model_copy(update={"serve": ServeSettings(max_body_bytes=64 * 1024)})
    application = create_app(small, store=store, run_projections=False)
    yield application
    application.state.projector.engine.dispose()


@pytest.fixture
def http(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as client:
        yield client


def sign_up(email: str = "shop@example.com", **overrides: Any) -> dict[str, Any]:
    return {"role": "seller", "email": email, "password": f.PASSWORD, "name": "N", **overrides}


# --- #4 deep JSON and huge integers ---------------------------------------------------------
def test_json_nested_a_thousand_deep_is_a_400(http: TestClient) -> None:
    deep = "[" * 1000 + "]" * 1000
    body = '{"role": "seller", "email": "a@b.co", "password": ' + deep + ', "name": "N"}'
    answer = http.post("/v1/accounts", content=body, headers=JSON)
    assert answer.status_code == 400 and "nested" in answer.json()["detail"]
    middling = "[" * 40 + "]" * 40  # under the interpreter's limit, over ours
    answer = http.post("/v1/sessions", content=f'{{"email": {middling}}}', headers=JSON)
    assert answer.status_code == 400


@pytest.mark.parametrize("field", ["password", "app_id"])
def test_an_integer_of_5000_digits_is_refused_not_a_500(http: TestClient, field: str) -> None:
    huge = "9" * 5000
    if field == "password":
        answer = http.post(
            "/v1/sessions", content=f'{{"email": "a@b.co", "password": {huge}}}', headers=JSON
        )
    else:
        answer = http.post(
            "/v1/installations",
            content=f'{{"app_id": {huge}}}',
            headers={**JSON, "Authorization": "Bearer x"},
        )
    assert answer.status_code in (400, 401, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"


# --- #5 body limit (a real server: test_slow_clients.py) -----------------------------------
def test_a_body_over_the_limit_is_a_413_before_it_is_read(http: TestClient) -> None:
    big = b'{"email": "' + b"a" * 100_000 + b'"}'
    answer = http.post("/v1/sessions", content=big, headers=JSON)
    assert answer.status_code == 413 and answer.json()["status"] == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 8192

    answer = http.post("/v1/sessions", content=chunks(), headers=JSON)
    assert answer.status_code == 413


# --- #11 media type, 401 before the body, control characters, credentials in URLs ------------
def test_json_routes_want_application_json(http: TestClient) -> None:
    body = '{"email": "a@b.co", "password": "whatever-long"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = http.post("/v1/sessions", content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 415, content_type
    ok = http.post(
        "/v1/sessions", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 401  # parsed: wrong credentials


@pytest.mark.parametrize("path", ["/v1/apps", "/v1/sync-events"])
def test_no_token_is_a_401_whatever_the_body(http: TestClient, path: str) -> None:
    answer = http.post(path, json={"nonsense": True})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("name", ["Shop\x00", "Shop\x07Bell", "Shop\nName", "Shop\u202eemaN"])
def test_control_characters_in_names_are_refused(http: TestClient, name: str) -> None:
    answer = http.post("/v1/accounts", json=sign_up(name=name))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "name"


def test_listings_refuse_control_characters_and_credentials_in_urls(store: Store) -> None:
    from domain.errors import InvalidInput

    developer = f.developer(store)
    refused = [
        {"name": "Order\x00Sync"},
        {"tagline": "tab\there"},
        {"redirect_uris": ["https://user:secret@ordersync.example.com/cb"]},
        {"redirect_uris": ["https://user@ordersync.example.com/cb"]},
        {"partner_url": "https://a:b@ordersync.example.com"},
        {"redirect_uris": ["https://ordersync.example.com/c b"]},
    ]
    for overrides in refused:
        with pytest.raises(InvalidInput):
            listings.list_app(store, developer, f.listing(**overrides))
    listed = listings.list_app(
        store, developer, f.listing(description="Line one.\nLine two.\tTabbed.")
    )
    assert listed.id


def test_a_success_report_with_a_null_error_code_is_accepted(http: TestClient) -> None:
    """#12 on HTTP: `"error_code": null` is fine for a success (SPEC, "Kafka")."""
    installation_id, _, app = connector(http, Developer(http), "shop@example.com")
    failure = http.post("/v1/sync-events", json=event(installation_id, "f-1"), headers=app)
    assert failure.status_code == 202 and failure.json()["incident_ids"]
    success = event(installation_id, "s-1", kind="success", error_code=None)
    answer = http.post("/v1/sync-events", json=success, headers=app)
    assert answer.status_code == 202, answer.text
    assert answer.json()["incident_ids"] == failure.json()["incident_ids"]  # resolved it


# --- security headers ------------------------------------------------------------------------
def test_every_answer_carries_the_security_headers(http: TestClient) -> None:
    for answer in (http.get("/v1/apps"), http.get("/nope"), http.get("/healthz")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in answer.headers  # the public URL is http
    page = http.get("/")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" not in page.headers["content-security-policy"]  # the page's own
    authenticated = http.get("/v1/me/apps", headers={"Authorization": "Bearer x"})
    assert authenticated.headers["cache-control"] == "no-store"


def test_hsts_when_the_public_url_is_https(settings: Settings, store: Store) -> None:
    https = settings.model_copy(update={"public_url": "https://store.example.com"})
    app = create_app(https, store=store, run_projections=False)
    with TestClient(app) as client:
        answer = client.get("/healthz")
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
        meta = client.get("/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == "https://store.example.com"
    app.state.projector.engine.dispose()


# --- #9 the issuer is the public URL, never the Host header ---------------------------------
def test_a_forged_host_header_changes_no_url(http: TestClient, store: Store) -> None:
    meta = http.get("/.well-known/oauth-authorization-server", headers={"Host": "evil.example"})
    assert meta.json()["issuer"] == "http://127.0.0.1:8000"
    assert "evil" not in meta.text
    dev = Dev(store)
    page = http.get(dev.authorize_url(scope="finance.read"), headers={"Host": "evil.example"})
    assert redirect_params(page)["iss"] == "http://127.0.0.1:8000"


# --- #10 the OAuth pages' CSRF token: signed, bound to the session, rotated ------------------
def _login_page(http: TestClient, dev: Dev) -> Any:
    page = http.get(dev.authorize_url())
    assert page.status_code == 200
    return page


def test_a_planted_csrf_cookie_with_a_matching_field_is_refused(
    http: TestClient, store: Store
) -> None:
    dev = Dev(store)
    page = _login_page(http, dev)
    fields = form_fields(page.text)
    http.cookies.set("appstore_csrf", "p" * 43)
    http.cookies.set("appstore_oauth_csrf", "p" * 43)  # the old double-submit cookie
    forged = http.post(
        "/oauth/authorize", data={**fields, "csrf_token": "p" * 43, "step": "show_signup"}
    )
    assert forged.status_code == 403


def test_a_token_shown_before_log_in_fails_after_it_and_a_decision_is_not_replayed(
    http: TestClient, store: Store
) -> None:
    dev = Dev(store)
    page = _login_page(http, dev)
    before = form_fields(page.text)["csrf_token"]
    page = post(http, page, step="show_signup")
    page = post(http, page, step="signup", name="S", email="s@example.com", password=f.PASSWORD)
    assert page.status_code == 200 and "Installation information" in page.text
    after = form_fields(page.text)["csrf_token"]
    assert after != before
    stale = http.post(
        "/oauth/authorize", data={**form_fields(page.text), "csrf_token": before, "step": "edit"}
    )
    assert stale.status_code == 403
    page = post(
        http,
        page,
        step="confirm",
        duration="30d",
        contact_email="a@b.co",
        contact_phone="+14155550100",
    )
    decision = form_fields(page.text)
    first = http.post("/oauth/authorize", data={**decision, "decision": "allow"})
    assert redirect_params(first)["code"]
    again = http.post("/oauth/authorize", data={**decision, "decision": "allow"})
    assert again.status_code == 403  # one token, one decision


# --- client disconnects ----------------------------------------------------------------------
def test_a_client_that_hangs_up_mid_body_is_not_an_error(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"email": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/sessions",
        "raw_path": b"/v1/sessions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"x")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    caplog.set_level(logging.INFO)
    asyncio.run(run())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any("client disconnected" in r.getMessage() for r in caplog.records)
