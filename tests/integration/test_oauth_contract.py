"""OAuth details real clients (authlib, requests-oauthlib) rely on (issue 10 #13):
introspection's token_type is `Bearer`; a token request leaving out the redirect_uri its
code was issued for, or repeating a parameter, is `invalid_request`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.testclient import TestClient

from application.store import Store
from tests.integration.test_oauth_http import (
    REDIRECT,
    VERIFIER,
    Dev,
    asgi,
    exchange,
    http,
    redirect_params,
    sign_up_and_authorize,
)

__all__ = ["asgi", "http"]  # fixtures


def _code(http: TestClient, dev: Dev) -> str:
    return redirect_params(sign_up_and_authorize(http, dev))["code"]


def test_introspection_says_bearer_for_an_access_token(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    tokens = exchange(http, dev, _code(http, dev)).json()
    answer = http.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, headers=dev.basic()
    ).json()
    assert answer["active"] is True and answer["token_type"] == "Bearer"
    refresh = http.post(
        "/oauth/introspect", data={"token": tokens["refresh_token"]}, headers=dev.basic()
    ).json()
    assert refresh["active"] is True and "token_type" not in refresh


def test_a_token_request_without_the_codes_redirect_uri_is_invalid_request(
    http: TestClient, store: Store
) -> None:
    dev = Dev(store)
    code = _code(http, dev)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": VERIFIER}
    missing = http.post("/oauth/token", data=data, headers=dev.basic())
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert exchange(http, dev, code).status_code == 200  # the code was not spent


def test_a_repeated_parameter_is_invalid_request(http: TestClient, store: Store) -> None:
    dev = Dev(store)
    code = _code(http, dev)
    fields: list[tuple[str, Any]] = [
        ("grant_type", "authorization_code"),
        ("code", "forged"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]
    headers = {**dev.basic(), "Content-Type": "application/x-www-form-urlencoded"}
    answer = http.post("/oauth/token", content=urlencode(fields), headers=headers)
    assert answer.status_code == 400
    assert (
        answer.json()["error"] == "invalid_request" and "code" in answer.json()["error_description"]
    )
    assert exchange(http, dev, code).status_code == 200
