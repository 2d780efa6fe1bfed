"""The OAuth authorization endpoint's use cases: check a developer's authorization link,
issue a one-time code once the seller authorized (RFC 6749 §4.1, RFC 7636, RFC 9700); and
the in-store install's authorization, which hands the developer a code the same way."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from application import installations
from application.installations import own_installation
from application.listings import app as load_app
from application.store import Store
from domain import values as v
from domain.app_listing import AppListing, app_id_from_client_id
from domain.credentials import new_token, token_hash
from domain.errors import OAuthError
from domain.installation import Installation
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


@dataclass(frozen=True)
class StoreAuthorization:
    """An in-store authorization: the installation is active and the seller is sent on to
    `redirect_url` (the app's first redirect URI with the one-time `code` and `iss`)."""

    installation_id: UUID
    position: int | None
    code: str
    redirect_url: str
    expires_at: datetime


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
        extra = [s for s in requested if s in v.SCOPES and s not in app.asked_scopes]
        if unknown or extra:
            raise OAuthError("invalid_scope", f"not allowed: {' '.join(unknown + extra)}")
        scopes = v.scopes(requested)
    else:
        scopes = v.scopes(app.asked_scopes)
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


def not_granted(request: AuthorizationRequest, installation: Installation) -> list[str]:
    """The requested scopes the installation does not grant (yet): the seller is asked."""
    return [s for s in request.scopes if s not in installation.scopes]


def issue_code(
    store: Store,
    seller_id: UUID,
    installation_id: UUID,
    request: AuthorizationRequest,
    declined: Collection[str] = (),
) -> IssuedCode:
    """After the seller authorized: a one-time code for the client (RFC 6749 §4.1.2).

    The code carries the requested scopes the installation grants. Every other requested
    scope must be one the seller has just `declined`: none is dropped without asking.
    """
    installation = own_installation(store, seller_id, installation_id)
    now = store.clock.now()
    if installation.app_id != request.app.id:
        raise OAuthError("invalid_request", "installation is not of this app")
    if not installation.is_live(now):
        raise OAuthError("access_denied", "installation is not active")
    unanswered = [s for s in not_granted(request, installation) if s not in declined]
    if unanswered:
        raise OAuthError("access_denied", f"the seller was not asked for {' '.join(unanswered)}")
    scopes = [s for s in request.scopes if s in installation.scopes]
    if not scopes:
        raise OAuthError("access_denied", "the seller granted none of the requested scopes")
    code, record = _new_code(
        installation,
        request.redirect_uri,
        request.redirect_uri_given,
        scopes,
        request.code_challenge,
        now,
    )
    return IssuedCode(code, record.expires_at, store.save(record))


def authorize_request(
    store: Store,
    seller_id: UUID,
    installation_id: UUID,
    request: AuthorizationRequest,
    ticked: Collection[str],
) -> IssuedCode:
    """The seller authorized a link's request on the conditions page, leaving the `ticked`
    optional scopes ticked; then a code for the client (without the scopes left unticked).

    A pending installation is authorized with the required scopes asked and the ticked
    optional ones; a live one is granted, likewise, the scopes it was not granted before.
    """
    installation = own_installation(store, seller_id, installation_id)
    required = set(request.app.scopes)
    if installation.is_pending(store.clock.now()):
        asked = installation.scopes
        keep = [s for s in asked if s in required or s in ticked]
        installations.authorize(store, seller_id, installation_id, keep)
    else:
        asked = not_granted(request, installation)
        keep = [s for s in asked if s in required or s in ticked]
        if keep:
            installations.grant_scopes(store, seller_id, installation_id, keep)
    declined = [s for s in asked if s not in keep]
    return issue_code(store, seller_id, installation_id, request, declined)


def authorize_in_store(
    store: Store,
    seller_id: UUID,
    installation_id: UUID,
    issuer: str,
    scopes: Sequence[str] | None = None,
) -> StoreAuthorization:
    """The seller authorizes a pending installation in the store (optionally keeping only
    `scopes`, every required one among them), and the developer is handed a code.

    The code goes to the app's first registered redirect URI with `iss` (RFC 9207) and no
    `state` (the store started the flow); it is exchanged at the token endpoint like a
    link's code, with client authentication and without PKCE. The authorization and its
    code are stored in one transaction: no active installation without its code.
    """

    def attempt() -> StoreAuthorization:
        installation = own_installation(store, seller_id, installation_id)
        app = load_app(store, installation.app_id)
        now = store.clock.now()
        installation.authorize(now, scopes, app.scopes)
        uri = app.details["redirect_uris"][0]
        code, record = _new_code(installation, uri, False, installation.scopes, None, now)
        return StoreAuthorization(
            installation_id=installation.id,
            position=store.save(installation, record),
            code=code,
            redirect_url=with_query(uri, {"code": code, "iss": issuer}),
            expires_at=record.expires_at,
        )

    return store.retrying(attempt)


def _new_code(
    installation: Installation,
    redirect_uri: str,
    redirect_uri_given: bool,
    scopes: list[str],
    code_challenge: str | None,
    now: datetime,
) -> tuple[str, AuthorizationCode]:
    code = new_token("ac_")
    record = AuthorizationCode(
        code_hash=token_hash(code),
        app_id=installation.app_id,
        installation_id=installation.id,
        seller_id=installation.seller_id,
        redirect_uri=redirect_uri,
        redirect_uri_given=redirect_uri_given,
        scopes=list(scopes),
        code_challenge=code_challenge,
        issued_at=now,
        expires_at=now + CODE_LIFETIME,
    )
    return code, record


def with_query(uri: str, params: Mapping[str, str]) -> str:
    """`uri` with `params` added to its query (a registered URI keeps its own query)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
