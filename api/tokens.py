"""OAuth 2.0 endpoints for developers' back ends: the token endpoint (RFC 6749), token
introspection (RFC 7662), revocation (RFC 7009) and the server's metadata (RFC 8414).

Bodies are forms (`application/x-www-form-urlencoded`); clients authenticate with
client_secret_basic or client_secret_post; errors are RFC 6749 JSON (api/problems.py).
The seller's side of the flow (the authorization pages) lives in web/authorize.py.
"""

from __future__ import annotations

import base64
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.problems import NO_STORE
from api.routing import Call, Endpoint
from application import tokens
from domain import values as v
from domain.app_listing import AppListing
from domain.errors import OAuthError
from domain.oauth import ACCESS


class ClientForm(BaseModel):
    """Fields every OAuth endpoint accepts (client_secret_post)."""

    model_config = ConfigDict(extra="allow")

    client_id: str | None = Field(default=None, description="client_secret_post only")
    client_secret: str | None = Field(default=None, description="client_secret_post only")


class TokenForm(ClientForm):
    grant_type: str | None = Field(default=None, description="authorization_code | refresh_token")
    code: str | None = Field(default=None, description="authorization_code")
    redirect_uri: str | None = Field(default=None, description="authorization_code")
    code_verifier: str | None = Field(default=None, description="authorization_code with PKCE")
    refresh_token: str | None = Field(default=None, description="refresh_token")
    scope: str | None = Field(default=None, description="refresh_token: narrow the access token")


class PresentedTokenForm(ClientForm):
    """A token to introspect or revoke."""

    token: str | None = Field(default=None, description="the token")
    token_type_hint: str | None = Field(default=None, description="ignored")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str
    scope: str
    installation_id: str


class Introspection(BaseModel):
    """RFC 7662 §2.2, plus a typed `reason` when inactive."""

    active: bool
    reason: Literal["unknown", "revoked", "expired", "cancelled", "installation_expired"] | None = (
        Field(default=None, description="why the token is inactive (beyond RFC 7662)")
    )
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    seller_id: str | None = None
    installation_id: str | None = None


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    authorization_endpoint: str
    token_endpoint: str


def issuer(request: Request) -> str:
    """This authorization server's issuer identifier (RFC 8414): the public base URL
    (APPSTORE_PUBLIC_URL), never the Host header a client sent."""
    return str(request.app.state.public_url)


async def metadata(call: Call) -> dict[str, Any]:
    """Authorization server metadata (RFC 8414)."""
    base = issuer(call.request)
    auth_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": list(v.SCOPES),
        "authorization_response_iss_parameter_supported": True,
    }


def _client(call: Call) -> AppListing:
    """The authenticated client (client_secret_basic or client_secret_post)."""
    request = call.request
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    form: ClientForm = call.body
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:  # not base64, not ASCII or not UTF-8
            raise OAuthError("invalid_client", "malformed Basic credentials") from None
        raw_id, _, raw_secret = decoded.partition(":")
        client_id: str | None = unquote(raw_id)
        secret: str | None = unquote(raw_secret)
        if form.client_secret:
            raise OAuthError("invalid_request", "use one client authentication method only")
    else:
        client_id, secret = form.client_id or None, form.client_secret or None
    return tokens.authenticate_client(call.state.store, client_id, secret)


async def token(call: Call) -> Response:
    """Token endpoint: authorization_code and refresh_token (rotating) grants."""

    def answer() -> Response:
        client = _client(call)
        form: TokenForm = call.body
        store = call.state.store
        if form.grant_type == "authorization_code":
            issued = tokens.exchange_code(
                store, client, form.code or None, form.redirect_uri or None, form.code_verifier
            )
        elif form.grant_type == "refresh_token":
            issued = tokens.refresh_tokens(
                store, client, form.refresh_token or None, form.scope or None
            )
        elif not form.grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        else:
            raise OAuthError("unsupported_grant_type", f"{form.grant_type} is not supported")
        body = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "refresh_token": issued.refresh_token,
            "scope": " ".join(issued.scopes),
            "installation_id": str(issued.installation_id),
        }
        return JSONResponse(body, headers=NO_STORE)

    result: Response = await call.run(answer)
    return result


def introspection(check: tokens.TokenCheck, client_id: str) -> dict[str, Any]:
    """The RFC 7662 answer, plus a typed `reason` when inactive."""
    if not check.active:
        return {"active": False, "reason": check.reason}
    body: dict[str, Any] = {
        "active": True,
        "scope": " ".join(check.scopes),
        "sub": str(check.seller_id),
        "seller_id": str(check.seller_id),
        "installation_id": str(check.installation_id),
        "iat": int(check.issued_at.timestamp()) if check.issued_at else None,
        "client_id": client_id,
    }
    if check.kind == ACCESS:
        body["token_type"] = "Bearer"  # RFC 7662 §2.2: an RFC 6749 §7.1 type (none for refresh)
    if check.expires_at is not None:
        body["exp"] = int(check.expires_at.timestamp())
    return body


async def introspect(call: Call) -> Response:
    """Token introspection (RFC 7662) with a typed reason when inactive."""

    def answer() -> Response:
        client = _client(call)
        form: PresentedTokenForm = call.body
        check = tokens.check_token(call.state.store, form.token or None, client=client)
        return JSONResponse(introspection(check, client.client_id), headers=NO_STORE)

    result: Response = await call.run(answer)
    return result


async def revoke(call: Call) -> Response:
    """Token revocation (RFC 7009): 200 even for unknown tokens."""

    def answer() -> Response:
        client = _client(call)
        form: PresentedTokenForm = call.body
        tokens.revoke_token(call.state.store, client, form.token or None)
        return Response(status_code=200, headers=NO_STORE)

    result: Response = await call.run(answer)
    return result


endpoints = [
    Endpoint("GET", "/.well-known/oauth-authorization-server", metadata,
             "Authorization server metadata (RFC 8414)", "oauth", response=ServerMetadata),
    Endpoint("POST", "/oauth/token", token,
             "Token endpoint: authorization_code, refresh_token (rotating)", "oauth",
             body=TokenForm, form=True, response=TokenResponse, auth="client"),
    Endpoint("POST", "/oauth/introspect", introspect,
             "Token introspection (RFC 7662) with a typed reason", "oauth",
             body=PresentedTokenForm, form=True, response=Introspection, auth="client"),
    Endpoint("POST", "/oauth/revoke", revoke, "Token revocation (RFC 7009)", "oauth",
             body=PresentedTokenForm, form=True, auth="client"),
]  # fmt: skip
