"""The OAuth endpoints and the authorization-link pages over HTTP, on the real app (ASGI)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from uuid import UUID

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.auth import installation_token
from application import accounts, installations, listings
from application.store import Store
from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from tests import factories as f
from web import oauth_flow

REDIRECT = "https://ordersync.example.com/oauth/callback"
VERIFIER = "verifier-" + "x" * 50
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
)


@pytest.fixture
def asgi(settings: Settings, store: Store) -> Starlette:
    """The real application (create_app), reached over ASGI without a network."""
    return create_app(settings, store=store, run_projections=False)


def http_client(app: Starlette) -> TestClient:
    """A client with a cookie jar of its own (another browser)."""
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def http(asgi: Starlette) -> Iterator[TestClient]:
    with http_client(asgi) as client:
        yield client


class Dev:
    def __init__(self, store: Store) -> None:
        listed = listings.list_app(store, f.developer(store), f.listing())
        self.app_id = listed.id
        self.client_id = listed.client_id
        self.secret = listed.client_secret

    def basic(self, secret: str | None = None) -> dict[str, str]:
        raw = f"{self.client_id}:{secret or self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def authorize_url(self, **overrides: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "state": "st-123",
            "scope": "orders.read fulfillment.write",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v})


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the page's first form (CSRF token and OAuth parameters)."""
    form = html.split("<form", 1)[1].split("</form>", 1)[0]
    return {
        m.group(1): unescape(m.group(2))  # as a browser submits them
        for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    }


def post(http: TestClient, page: Any, **fields: str) -> Any:
    return http.post("/oauth/authorize", data={**form_fields(page.text), **fields})


def sign_up_and_authorize(http: TestClient, dev: Dev, email: str = "shop@example.com") -> Any:
    """Walks every page as a new seller; returns the final redirect."""
    page = http.get(dev.authorize_url())
    assert page.status_code == 200 and "Select your account type" in page.text
    page = post(http, page, step="show_signup")
    assert "Create a seller account" in page.text
    page = post(
        http,
        page,
        step="signup",
        name="My Shop",
        email=email,
        password=f.PASSWORD,
        account_type="cross_border",
    )
    assert page.status_code == 200 and "Installation information" in page.text, page.text
    page = post(
        http, page, step="info", duration="90d", contact_email=email, contact_phone="+14155550123"
    )
    assert "Confirm the installation" in page.text and "90 days" in page.text
    page = post(
        http,
        page,
        step="confirm",
        duration="90d",
        contact_email=email,
        contact_phone="+14155550123",
    )
    assert "Review the authorization conditions" in page.text
    assert "See your orders, including buyer shipping addresses" in page.text
    assert "Ship orders and upload tracking numbers" in page.text
    assert "01 April 2026" in page.text  # 90 days from the fixed clock's 2026-01-01
    return post(http, page, decision="allow")


def new_seller_at_conditions(http: TestClient, dev: Dev, email: str) -> Any:
    """Signs up through the link and confirms a 30-day install; returns the conditions page."""
    page = http.get(dev.authorize_url())
    page = post(http, page, step="show_signup")
    page = post(http, page, step="signup", name="S", email=email, password=f.PASSWORD)
    return post(
        http,
        page,
        step="confirm",
        duration="30d",
        contact_email="a@b.co",
        contact_phone="+14155550100",
    )


def redirect_params(response: Any) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(http: TestClient, dev: Dev, code: str, **overrides: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        **overrides,
    }
    return http.post("/oauth/token", data=data, headers=dev.basic())


def test_authorization_link_flow_from_sign_up_to_tokens(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    answer = redirect_params(sign_up_and_authorize(http, dev))
    assert answer["state"] == "st-123" and answer["code"].startswith("ac_")
    issued = exchange(http, dev, answer["code"])
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "orders.read fulfillment.write"
    # introspection
    seen = http.post("/oauth/introspect", data={"token": body["access_token"]}, headers=dev.basic())
    assert seen.json()["active"] is True
    assert seen.json()["installation_id"] == body["installation_id"]
    assert seen.json()["client_id"] == dev.client_id
    # refresh with client_secret_post
    refreshed = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": dev.client_id,
            "client_secret": dev.secret,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != body["refresh_token"]
    installation = installations.installation(store, UUID(body["installation_id"]))
    assert installation.via == "oauth" and installation.duration.value == "90d"
    assert accounts.account(store, installation.seller_id).account_type == "cross_border"


def test_log_in_with_account_type_then_reauthorize_a_live_installation(
    http: TestClient, store: Store
) -> None:
    dev = Dev(store)
    seller = f.seller(store, "local")
    email = accounts.account(store, seller).email
    installation = f.active_installation(store, seller, dev.app_id)
    page = http.get(dev.authorize_url())
    wrong = post(
        http, page, step="login", email=email, password=f.PASSWORD, account_type="cross_border"
    )
    assert wrong.status_code == 403 and "account type" in wrong.text
    page = post(http, wrong, step="login", email=email, password=f.PASSWORD, account_type="local")
    # already installed: straight to the conditions of the live installation
    assert "Review the authorization conditions" in page.text
    assert str(installation) in page.text
    answer = redirect_params(post(http, page, decision="allow"))
    assert exchange(http, dev, answer["code"]).json()["installation_id"] == str(installation)


def test_deny_redirects_with_access_denied_and_state(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    page = new_seller_at_conditions(http, dev, "deny@example.com")
    installation_id = form_fields(page.text)["installation_id"]
    answer = redirect_params(post(http, page, decision="deny"))
    assert answer["error"] == "access_denied" and answer["state"] == "st-123"
    assert "code" not in answer
    assert installations.installation(store, UUID(installation_id)).status.value == "declined"


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "app_" + "0" * 32},
        {"client_id": "nonsense"},
        {"redirect_uri": "https://evil.example.com/cb"},
        {"redirect_uri": REDIRECT + "/"},
    ],
)
def test_unknown_client_or_redirect_uri_shows_an_error_page_never_a_redirect(
    http: TestClient, store: Store, overrides: dict[str, str]
) -> None:
    page = http.get(Dev(store).authorize_url(**overrides))
    assert page.status_code == 400 and "location" not in page.headers
    assert "cannot be used" in page.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": "finance.read"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
    ],
)
def test_other_request_errors_go_back_to_the_client_with_state(
    http: TestClient, store: Store, overrides: dict[str, str], error: str
) -> None:
    answer = redirect_params(http.get(Dev(store).authorize_url(**overrides)))
    assert answer["error"] == error and answer["state"] == "st-123"


def test_forms_need_the_csrf_token(http: TestClient, store: Store, asgi: Starlette) -> None:
    dev = Dev(store)
    page = http.get(dev.authorize_url())
    fields = form_fields(page.text)
    fields["csrf_token"] = "forged"
    refused = http.post("/oauth/authorize", data={**fields, "step": "show_signup"})
    assert refused.status_code == 403
    with http_client(asgi) as fresh:  # no CSRF cookie at all
        refused = fresh.post("/oauth/authorize", data={**form_fields(page.text), "step": "login"})
        assert refused.status_code == 403


def test_pages_cannot_be_framed(http: TestClient, store: Store) -> None:
    page = http.get(Dev(store).authorize_url())
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_token_endpoint_error_cases(
    http: TestClient, store: Store, clock: FixedClock, asgi: Starlette
) -> None:
    dev = Dev(store)
    code = redirect_params(sign_up_and_authorize(http, dev))["code"]
    wrong_secret = http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers=dev.basic("cs_wrong"),
    )
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    assert wrong_secret.headers["www-authenticate"].startswith("Basic")
    assert exchange(http, dev, code, redirect_uri=REDIRECT + "x").json()["error"] == "invalid_grant"
    pkce = exchange(http, dev, code, code_verifier="y" * 60)
    assert pkce.status_code == 400 and pkce.json()["error"] == "invalid_grant"
    unsupported = http.post("/oauth/token", data={"grant_type": "password"}, headers=dev.basic())
    assert unsupported.json()["error"] == "unsupported_grant_type"
    first = exchange(http, dev, code)
    assert first.status_code == 200
    reuse = exchange(http, dev, code)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    revoked = http.post(
        "/oauth/introspect", data={"token": first.json()["access_token"]}, headers=dev.basic()
    )
    assert revoked.json() == {"active": False, "reason": "revoked"}
    # a code left unused for 10 minutes expires
    with http_client(asgi) as other:
        late = redirect_params(sign_up_and_authorize(other, dev, "late@example.com"))["code"]
    clock.advance(timedelta(minutes=10, seconds=1))
    expired = exchange(http, dev, late)
    assert expired.json()["error"] == "invalid_grant" and "expired" in expired.text


def test_refresh_reuse_after_grace_revokes_the_chain(
    http: TestClient, store: Store, clock: FixedClock
) -> None:
    dev = Dev(store)
    tokens = exchange(http, dev, redirect_params(sign_up_and_authorize(http, dev))["code"]).json()

    def refresh(token: str) -> Any:
        data = {"grant_type": "refresh_token", "refresh_token": token}
        return http.post("/oauth/token", data=data, headers=dev.basic())

    second = refresh(tokens["refresh_token"]).json()
    clock.advance(timedelta(minutes=2))
    reuse = refresh(tokens["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    for token in (second["access_token"], second["refresh_token"]):
        answer = http.post("/oauth/introspect", data={"token": token}, headers=dev.basic())
        assert answer.json() == {"active": False, "reason": "revoked"}


def test_revoke_endpoint(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    tokens = exchange(http, dev, redirect_params(sign_up_and_authorize(http, dev))["code"]).json()
    done = http.post("/oauth/revoke", data={"token": tokens["refresh_token"]}, headers=dev.basic())
    assert done.status_code == 200
    unknown = http.post("/oauth/revoke", data={"token": "nope"}, headers=dev.basic())
    assert unknown.status_code == 200
    answer = http.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, headers=dev.basic()
    )
    assert answer.json()["reason"] == "revoked"


def test_cancel_makes_every_token_inactive_with_reason_cancelled(
    http: TestClient, store: Store
) -> None:
    dev = Dev(store)
    tokens = exchange(http, dev, redirect_params(sign_up_and_authorize(http, dev))["code"]).json()
    installation = installations.installation(store, UUID(tokens["installation_id"]))
    installations.cancel(store, installation.seller_id, installation.id)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = http.post("/oauth/introspect", data={"token": token}, headers=dev.basic())
        assert answer.json() == {"active": False, "reason": "cancelled"}
    refused = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=dev.basic(),
    )
    assert refused.json()["error"] == "invalid_grant"


def test_authorization_record_is_the_sellers_only(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    owner = f.seller(store)
    installation = f.active_installation(store, owner, dev.app_id)
    stranger = f.seller(store)

    def bearer(account: Any) -> dict[str, str]:
        token = accounts.start_session(
            store, accounts.account(store, account).email, f.PASSWORD
        ).token
        return {"Authorization": f"Bearer {token}"}

    mine = http.get(f"/v1/me/apps/{installation}", headers=bearer(owner))
    assert mine.status_code == 200
    record = mine.json()
    assert record["authorized_by"]["seller_id"] == str(owner)
    assert [h["event"] for h in record["history"]] == ["Installed", "Authorized"]
    theirs = http.get(f"/v1/me/apps/{installation}", headers=bearer(stranger))
    assert theirs.status_code == 404
    assert theirs.headers["content-type"].startswith("application/problem+json")
    assert http.get(f"/v1/me/apps/{installation}").status_code == 401
    assert http.get("/v1/me/apps/not-a-uuid", headers=bearer(owner)).status_code == 404


def test_no_token_code_or_secret_in_clear_in_the_event_store(
    http: TestClient, store: Store
) -> None:
    dev = Dev(store)
    code = redirect_params(sign_up_and_authorize(http, dev))["code"]
    tokens = exchange(http, dev, code).json()
    session = http.cookies.get(oauth_flow.SESSION_COOKIE)
    assert session
    blob = b"".join(n.state for n in store.application.recorder.select_notifications(1, 10_000))
    for secret in (code, tokens["access_token"], tokens["refresh_token"], dev.secret, session):
        assert secret.encode() not in blob
    assert f.PASSWORD.encode() not in blob


def test_expiry_stops_tokens_and_renewal_brings_them_back(
    http: TestClient, store: Store, clock: FixedClock
) -> None:
    dev = Dev(store)
    tokens = exchange(http, dev, redirect_params(sign_up_and_authorize(http, dev))["code"]).json()
    installation = installations.installation(store, UUID(tokens["installation_id"]))

    def refresh() -> Any:
        data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        return http.post("/oauth/token", data=data, headers=dev.basic())

    clock.advance(timedelta(days=90))
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = http.post("/oauth/introspect", data={"token": token}, headers=dev.basic())
        assert answer.json() == {"active": False, "reason": "installation_expired"}
    assert refresh().json()["error"] == "invalid_grant"
    installations.renew(store, installation.seller_id, installation.id, "30d")
    renewed = refresh()
    assert renewed.status_code == 200, renewed.text
    answer = http.post(
        "/oauth/introspect", data={"token": renewed.json()["access_token"]}, headers=dev.basic()
    )
    assert answer.json()["active"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic \u00e9".encode("latin-1")},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
)
def test_malformed_client_credentials_are_invalid_client(
    http: TestClient, headers: dict[str, Any]
) -> None:
    answer = http.post(
        "/oauth/token",
        content=b"grant_type=refresh_token&refresh_token=x",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_token_endpoint_wants_a_form(http: TestClient, store: Store) -> None:
    answer = http.post("/oauth/token", json={"grant_type": "refresh_token"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_installation_token_guard_for_app_facing_routes(http: TestClient, store: Store) -> None:
    """The helper other routes (POST /v1/sync-events) use to accept an app's access token."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from api.problems import Problem

    async def probe(request: Request) -> Response:
        try:
            check = await installation_token(request, request.query_params.get("scope"))
        except Problem as problem:
            return problem.response()
        return JSONResponse({"installation_id": str(check.installation_id)})

    app = Starlette(routes=[Route("/probe", probe)])
    app.state.store = store
    dev = Dev(store)
    tokens = exchange(http, dev, redirect_params(sign_up_and_authorize(http, dev))["code"]).json()
    with TestClient(app) as client:
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        ok = client.get("/probe?scope=orders.read", headers=bearer)
        assert ok.json() == {"installation_id": tokens["installation_id"]}
        scope = client.get("/probe?scope=finance.read", headers=bearer)
        assert scope.status_code == 403
        assert 'error="insufficient_scope"' in scope.headers["www-authenticate"]
        assert client.get("/probe").status_code == 401
        installation = installations.installation(store, UUID(tokens["installation_id"]))
        installations.cancel(store, installation.seller_id, installation.id)
        cancelled = client.get("/probe", headers=bearer)
        assert cancelled.status_code == 401
        assert 'error_description="cancelled"' in cancelled.headers["www-authenticate"]
        assert cancelled.json()["errors"] == [{"field": "Authorization", "message": "cancelled"}]


def test_redirects_carry_the_issuer_and_metadata_describes_the_server(
    http: TestClient, store: Store
) -> None:
    dev = Dev(store)
    public = "http://127.0.0.1:8000"  # APPSTORE_PUBLIC_URL unset: where serve listens
    answer = redirect_params(sign_up_and_authorize(http, dev))
    assert answer["iss"] == public
    error = redirect_params(http.get(dev.authorize_url(scope="finance.read")))
    assert error["iss"] == public
    meta = http.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == public
    assert meta["token_endpoint"] == f"{public}/oauth/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True


def test_use_another_account_ends_the_session(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    page = http.get(dev.authorize_url())
    page = post(http, page, step="show_signup")
    page = post(http, page, step="signup", name="S", email="sw@example.com", password=f.PASSWORD)
    session = http.cookies.get(oauth_flow.SESSION_COOKIE)
    assert session and accounts.session_for(store, session) is not None
    page = post(http, page, step="switch")
    assert "Select your account type" in page.text
    assert accounts.session_for(store, session) is None
    assert http.cookies.get(oauth_flow.SESSION_COOKIE) is None


def test_state_is_escaped_in_pages_and_echoed_unchanged(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    evil = '"><script>alert(1)</script>&x=1'
    page = http.get(dev.authorize_url(state=evil))
    assert "<script>alert(1)</script>" not in page.text
    assert "&#34;&gt;&lt;script&gt;" in page.text
    page = post(http, page, step="show_signup")
    page = post(http, page, step="signup", name="S", email="xss@example.com", password=f.PASSWORD)
    assert form_fields(page.text)["state"] == evil
    page = post(
        http,
        page,
        step="confirm",
        duration="30d",
        contact_email="a@b.co",
        contact_phone="+14155550100",
    )
    assert redirect_params(post(http, page, decision="allow"))["state"] == evil


def test_a_registered_redirect_uri_keeps_its_own_query(store: Store, http: TestClient) -> None:
    uri = "https://ordersync.example.com/cb?tenant=7"
    listed = listings.list_app(store, f.developer(store), f.listing(redirect_uris=[uri]))
    query = urlencode(
        {
            "response_type": "code",
            "client_id": listed.client_id,
            "redirect_uri": uri,
            "state": "s",
            "scope": "shop.read",
        }
    )
    answer = http.get(f"/oauth/authorize?{query}")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    params = parse_qs(location.query)
    assert params["tenant"] == ["7"] and params["error"] == ["invalid_scope"]
    assert params["state"] == ["s"]


def test_authorizing_after_the_30_minute_window_is_access_denied(
    http: TestClient, store: Store, clock: FixedClock
) -> None:
    dev = Dev(store)
    page = new_seller_at_conditions(http, dev, "slow@example.com")
    clock.advance(timedelta(minutes=31))
    answer = redirect_params(post(http, page, decision="allow"))
    assert answer["error"] == "access_denied" and answer["state"] == "st-123"
    assert "code" not in answer
