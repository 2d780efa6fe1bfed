"""The OAuth authorization endpoint's use cases: check a developer's authorization link,
issue a one-time code once the seller authorized (RFC 6749 §4.1, RFC 7636, RFC 9700)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from application.installations import own_installation
from application.store import Store
from domain import values as v
from domain.app_listing import AppListing, app_id_from_client_id
from domain.credentials import new_token, token_hash
from domain.errors import OAuthError
from domain.oauth import CODE_LIFETIME, AuthorizationCode, is_pkce_value


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked `GET /oauth/authorize` request."""

    app: AppListing
    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    scopes: list[str]
    state: str | None
    code_challenge: str | None


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime
    position: int | None


def client_app(store: Store, client_id: str | None) -> AppListing | None:
    """The app a client_id names (no secret checked), or None."""
    app_id = app_id_from_client_id(client_id or "")
    return store.load(app_id, AppListing) if app_id else None


def check_authorization_request(
    store: Store,
    *,
    client_id: str | None,
    redirect_uri: str | None,
    response_type: str | None,
    scope: str | None,
    state: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
) -> AuthorizationRequest:
    """Validates an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 9700 §2.1).

    Raises a non-redirectable OAuthError for an unknown client or a redirect_uri that is
    not registered exactly; a redirectable one for every other problem.
    """
    app = client_app(store, client_id)
    if app is None or not app.is_listed:
        raise OAuthError("invalid_client", "unknown client_id", redirectable=False)
    registered: list[str] = list(app.details["redirect_uris"])
    given = bool(redirect_uri)
    if given:
        if redirect_uri not in registered:
            raise OAuthError(
                "invalid_request",
                "redirect_uri does not match a registered one",
                redirectable=False,
            )
        uri = str(redirect_uri)
    elif len(registered) == 1:
        uri = registered[0]
    else:
        raise OAuthError("invalid_request", "redirect_uri is required", redirectable=False)
    if response_type != "code":
        raise OAuthError("unsupported_response_type", "response_type must be 'code'")
    requested = (scope or "").split()
    if requested:
        unknown = [s for s in requested if s not in v.SCOPES]
        extra = [s for s in requested if s in v.SCOPES and s not in app.scopes]
        if unknown or extra:
            raise OAuthError("invalid_scope", f"not allowed: {' '.join(unknown + extra)}")
        scopes = v.scopes(requested)
    else:
        scopes = app.scopes
    if code_challenge is not None and code_challenge != "":
        if (code_challenge_method or "plain") != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if not is_pkce_value(code_challenge):
            raise OAuthError("invalid_request", "code_challenge is malformed")
    elif code_challenge_method:
        raise OAuthError("invalid_request", "code_challenge_method without code_challenge")
    return AuthorizationRequest(
        app=app,
        client_id=app.client_id,
        redirect_uri=uri,
        redirect_uri_given=given,
        scopes=scopes,
        state=state,
        code_challenge=code_challenge or None,
    )


def issue_code(
    store: Store, seller_id: UUID, installation_id: UUID, request: AuthorizationRequest
) -> IssuedCode:
    """After the seller authorized: a one-time code for the client (RFC 6749 §4.1.2)."""
    installation = own_installation(store, seller_id, installation_id)
    now = store.clock.now()
    if installation.app_id != request.app.id:
        raise OAuthError("invalid_request", "installation is not of this app")
    if not installation.is_live(now):
        raise OAuthError("access_denied", "installation is not active")
    scopes = [s for s in request.scopes if s in installation.scopes]
    if not scopes:
        raise OAuthError("invalid_scope", "the installation grants none of these scopes")
    code = new_token("ac_")
    record = AuthorizationCode(
        code_hash=token_hash(code),
        app_id=request.app.id,
        installation_id=installation.id,
        seller_id=seller_id,
        redirect_uri=request.redirect_uri,
        redirect_uri_given=request.redirect_uri_given,
        scopes=scopes,
        code_challenge=request.code_challenge,
        issued_at=now,
        expires_at=now + CODE_LIFETIME,
    )
    return IssuedCode(code, record.expires_at, store.save(record))
