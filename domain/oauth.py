"""OAuth 2.0 for developer apps: authorization codes (+PKCE), rotating tokens, introspection.

RFC 6749 with the practice of RFC 9700: codes are single-use, short-lived and bound to the
client, the redirect URI and (when given) an S256 PKCE challenge; a replayed code revokes
what it issued; refresh tokens rotate, the previous one keeps working for a short grace
window, and a later reuse revokes the whole chain.

Tokens are random and stored only as hashes: each token is an `IssuedToken` aggregate whose
id derives from the token's hash, so checking a token is a few primary-key reads (token,
grant, installation) and nothing is ever stored that would let a reader use a token.
A token is valid only while its installation is live, so cancelling an installation (or its
expiry) cuts every token at once without a write per token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from threading import Lock
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5
from weakref import WeakKeyDictionary

from eventsourcing.domain import Aggregate, event

from domain import values as v
from domain.app_listing import AppListing, app_id_from_client_id
from domain.credentials import new_token, token_hash
from domain.errors import DomainError
from domain.installation import Installation
from domain.store import AppStore
from domain.values import InstallationStatus

CODE_LIFETIME = timedelta(minutes=10)
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
# A client that lost the answer to a refresh may retry with the previous refresh token.
REFRESH_GRACE = timedelta(seconds=60)

ACCESS = "access_token"
REFRESH = "refresh_token"

_PKCE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


# --- errors ------------------------------------------------------------------------------
class OAuthError(DomainError):
    """An RFC 6749 error: `error` is the registered code, `status` the HTTP status.

    `redirectable` errors of the authorization endpoint go back to the client's
    redirect_uri; the others (unknown client, wrong redirect_uri) must never redirect.
    """

    title = "OAuth error"

    def __init__(
        self, error: str, description: str, *, status: int = 400, redirectable: bool = True
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.redirectable = redirectable

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


# --- aggregates --------------------------------------------------------------------------
class AuthorizationCode(Aggregate):
    """A one-time authorization code; its id derives from the code's hash."""

    @staticmethod
    def create_id(code_hash: str) -> UUID:
        return code_id_for(code_hash)

    @event("Issued")
    def __init__(
        self,
        code_hash: str,
        app_id: UUID,
        installation_id: UUID,
        seller_id: UUID,
        redirect_uri: str,
        redirect_uri_given: bool,
        scopes: list[str],
        code_challenge: str | None,
        issued_at: datetime,
        expires_at: datetime,
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self.seller_id = seller_id
        self.redirect_uri = redirect_uri
        self.redirect_uri_given = redirect_uri_given
        self.scopes = list(scopes)
        self.code_challenge = code_challenge
        self.issued_at = issued_at
        self.expires_at = expires_at
        self.grant_id = grant_id_for(code_hash)
        self.redeemed_at: datetime | None = None
        self.replayed_at: datetime | None = None

    @event("Redeemed")
    def redeem(self, redeemed_at: datetime) -> None:
        self.redeemed_at = redeemed_at

    @event("ReplayDetected")
    def replay_detected(self, detected_at: datetime) -> None:
        self.replayed_at = detected_at


class TokenGrant(Aggregate):
    """One authorization's family of tokens: the refresh chain and its revocation.

    `generation` counts refresh rotations; a refresh token is current when its generation
    equals the grant's; a rotated-away one is honoured until `superseded_at + grace` (a
    client retrying after a lost response), and any later use revokes the whole grant.
    """

    @staticmethod
    def create_id(code_hash: str) -> UUID:
        return grant_id_for(code_hash)

    @event("Granted")
    def __init__(
        self,
        code_hash: str,
        app_id: UUID,
        installation_id: UUID,
        seller_id: UUID,
        scopes: list[str],
        granted_at: datetime,
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self.seller_id = seller_id
        self.scopes = list(scopes)
        self.granted_at = granted_at
        self.generation = 1
        self.rotated_at: datetime | None = None
        # generation -> when it was rotated away (only those still inside the grace window)
        self.superseded_at: dict[int, datetime] = {}
        self.revoked_at: datetime | None = None
        self.revoke_reason: str | None = None
        self.revoked_tokens: set[UUID] = set()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def refresh_generation_state(self, generation: int, now: datetime) -> str:
        """'current', 'grace' (rotated away moments ago) or 'reused'."""
        if generation == self.generation:
            return "current"
        superseded = self.superseded_at.get(generation)
        if superseded is not None and now < superseded + REFRESH_GRACE:
            return "grace"
        return "reused"

    @event("Refreshed")
    def refreshed(self, generation: int, refreshed_at: datetime, access_token_id: UUID) -> None:
        self.superseded_at = {
            g: at for g, at in self.superseded_at.items() if refreshed_at < at + REFRESH_GRACE
        }
        self.superseded_at[self.generation] = refreshed_at
        self.generation = generation
        self.rotated_at = refreshed_at

    @event("AccessTokenRevoked")
    def access_token_revoked(self, token_id: UUID, revoked_at: datetime) -> None:
        self.revoked_tokens.add(token_id)

    def revoke(self, now: datetime, reason: str) -> None:
        """Revokes every token of this grant (idempotent)."""
        if not self.is_revoked:
            self._revoked(now, reason)

    @event("Revoked")
    def _revoked(self, revoked_at: datetime, reason: str) -> None:
        self.revoked_at = revoked_at
        self.revoke_reason = reason


class IssuedToken(Aggregate):
    """An access or refresh token, found by the hash of the token (never the token)."""

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        return token_id_for(token_hash)

    @event("Issued")
    def __init__(
        self,
        token_hash: str,
        kind: str,
        grant_id: UUID,
        app_id: UUID,
        installation_id: UUID,
        seller_id: UUID,
        scopes: list[str],
        generation: int,
        issued_at: datetime,
        expires_at: datetime | None,
    ) -> None:
        self.kind = kind
        self.grant_id = grant_id
        self.app_id = app_id
        self.installation_id = installation_id
        self.seller_id = seller_id
        self.scopes = list(scopes)
        self.generation = generation
        self.issued_at = issued_at
        self.expires_at = expires_at


class InstallationGrants(Aggregate):
    """The grants made for one installation, so its authorization record can list them."""

    @staticmethod
    def create_id(installation_id: UUID) -> UUID:
        return installation_grants_id(installation_id)

    @event("Opened")
    def __init__(self, installation_id: UUID) -> None:
        self.installation_id = installation_id
        self.grant_ids: list[UUID] = []

    @event("GrantAdded")
    def add(self, grant_id: UUID) -> None:
        self.grant_ids.append(grant_id)


def code_id_for(code_hash: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:oauth:code:{code_hash}")


def grant_id_for(code_hash: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:oauth:grant:{code_hash}")


def token_id_for(token_hash: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:oauth:token:{token_hash}")


def installation_grants_id(installation_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:oauth:grants:{installation_id}")


# --- results -----------------------------------------------------------------------------
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
class TokenSet:
    """What the token endpoint answers (the tokens are shown here only)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]
    installation_id: UUID
    position: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": " ".join(self.scopes),
            "installation_id": str(self.installation_id),
        }


@dataclass(frozen=True)
class TokenCheck:
    """The verdict on a presented token.

    `reason` when inactive: `unknown`, `revoked`, `expired`, `cancelled`,
    `installation_expired`; or `insufficient_scope` when a required scope is missing.
    """

    active: bool
    reason: str | None = None
    kind: str | None = None
    installation_id: UUID | None = None
    seller_id: UUID | None = None
    app_id: UUID | None = None
    scopes: list[str] = field(default_factory=list)
    issued_at: datetime | None = None
    expires_at: datetime | None = None

    def introspection(self, client_id: str | None = None) -> dict[str, Any]:
        """The RFC 7662 answer, plus a typed `reason` when inactive."""
        if not self.active:
            return {"active": False, "reason": self.reason}
        body: dict[str, Any] = {
            "active": True,
            "scope": " ".join(self.scopes),
            "token_type": self.kind,
            "sub": str(self.seller_id),
            "seller_id": str(self.seller_id),
            "installation_id": str(self.installation_id),
            "iat": int(self.issued_at.timestamp()) if self.issued_at else None,
        }
        if client_id:
            body["client_id"] = client_id
        if self.expires_at is not None:
            body["exp"] = int(self.expires_at.timestamp())
        return body


UNKNOWN = TokenCheck(active=False, reason="unknown")


# --- the authorization endpoint ------------------------------------------------------------
def client_app(store: AppStore, client_id: str | None) -> AppListing | None:
    """The app a client_id names (no secret checked), or None."""
    app_id = app_id_from_client_id(client_id or "")
    return store._get(app_id, AppListing) if app_id else None


def check_authorization_request(
    store: AppStore,
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
        if not _PKCE.match(code_challenge):
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
    store: AppStore, seller_id: UUID, installation_id: UUID, request: AuthorizationRequest
) -> IssuedCode:
    """After the seller authorized: a one-time code for the client (RFC 6749 §4.1.2)."""
    installation = store._own_installation(seller_id, installation_id)
    now = store.clock.now()
    if installation.app_id != request.app.id:
        raise OAuthError("invalid_request", "installation is not of this app")
    if not installation.is_live(now):
        raise OAuthError("access_denied", "installation is not active")
    scopes = [s for s in request.scopes if s in installation.scopes]
    if not scopes:
        raise OAuthError("invalid_scope", "the installation grants none of these scopes")
    code = new_token("ac_")
    code_record = AuthorizationCode(
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
    return IssuedCode(code, code_record.expires_at, store._commit(code_record))


# --- the token endpoint ------------------------------------------------------------------
def authenticate_client(store: AppStore, client_id: str | None, secret: str | None) -> AppListing:
    """The client app, or an `invalid_client` OAuthError (HTTP 401)."""
    app = store.authenticate_client(client_id or "", secret or "") if client_id and secret else None
    if app is None:
        raise OAuthError("invalid_client", "client authentication failed", status=401)
    return app


def _pkce_matches(challenge: str, verifier: str) -> bool:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)


def exchange_code(
    store: AppStore,
    client: AppListing,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
) -> TokenSet:
    """grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6)."""
    if not code:
        raise OAuthError("invalid_request", "code is required")
    code_hash = token_hash(code)

    def attempt() -> TokenSet:
        now = store.clock.now()
        record = store._get(code_id_for(code_hash), AuthorizationCode)
        if record is None or record.app_id != client.id:
            raise _invalid_grant("unknown authorization code")
        if record.redeemed_at is not None:
            # RFC 6749 §4.1.2 / RFC 9700 §4.5: a replay revokes what the code issued.
            grant = store._get(record.grant_id, TokenGrant)
            if grant is not None:
                grant.revoke(now, "code_reuse")
            if record.replayed_at is None:
                record.replay_detected(now)
            store._commit(record, grant)
            raise _invalid_grant("authorization code was already used")
        if now >= record.expires_at:
            raise _invalid_grant("authorization code expired")
        if (record.redirect_uri_given or redirect_uri) and redirect_uri != record.redirect_uri:
            raise _invalid_grant("redirect_uri does not match the authorization request")
        if record.code_challenge is not None:
            if not code_verifier or not _PKCE.match(code_verifier):
                raise _invalid_grant("code_verifier is missing or malformed")
            if not _pkce_matches(record.code_challenge, code_verifier):
                raise _invalid_grant("code_verifier does not match the code_challenge")
        elif code_verifier:
            # RFC 9700 §4.8.2: a verifier without a challenge hints at a downgrade attack.
            raise _invalid_grant("code_verifier given but no code_challenge was sent")
        installation = store._get(record.installation_id, Installation)
        if installation is None or not installation.is_live(now):
            raise _invalid_grant("the installation is no longer active")
        record.redeem(now)
        grant = TokenGrant(
            code_hash=code_hash,
            app_id=record.app_id,
            installation_id=record.installation_id,
            seller_id=record.seller_id,
            scopes=record.scopes,
            granted_at=now,
        )
        ledger = store._get(installation_grants_id(installation.id), InstallationGrants)
        if ledger is None:
            ledger = InstallationGrants(installation_id=installation.id)
        ledger.add(grant.id)
        access, access_record, refresh, refresh_record = _new_pair(grant, record.scopes, now)
        position = store._commit(record, grant, ledger, access_record, refresh_record)
        return _token_set(access, refresh, record.scopes, installation.id, position)

    return store._retrying(attempt)


def refresh_tokens(
    store: AppStore, client: AppListing, refresh_token: str | None, scope: str | None = None
) -> TokenSet:
    """grant_type=refresh_token (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14)."""
    if not refresh_token:
        raise OAuthError("invalid_request", "refresh_token is required")
    record_id = token_id_for(token_hash(refresh_token))

    def attempt() -> TokenSet:
        now = store.clock.now()
        record = store._get(record_id, IssuedToken)
        if record is None or record.kind != REFRESH or record.app_id != client.id:
            raise _invalid_grant("unknown refresh token")
        grant = store._get(record.grant_id, TokenGrant)
        if grant is None or grant.is_revoked:
            raise _invalid_grant("refresh token was revoked")
        installation = store._get(record.installation_id, Installation)
        if installation is None or not installation.is_live(now):
            raise _invalid_grant("the installation is no longer active")
        if grant.refresh_generation_state(record.generation, now) == "reused":
            grant.revoke(now, "refresh_reuse")
            store._commit(grant)
            raise _invalid_grant("refresh token was already used; the whole chain is revoked")
        scopes = grant.scopes
        if scope:
            asked = scope.split()
            if any(s not in grant.scopes for s in asked):
                raise OAuthError("invalid_scope", "scope exceeds what was granted")
            scopes = v.scopes(asked)
        generation = grant.generation + 1
        access, access_record, refresh, refresh_record = _new_pair(
            grant, scopes, now, generation=generation
        )
        grant.refreshed(generation, now, access_record.id)
        position = store._commit(grant, access_record, refresh_record)
        return _token_set(access, refresh, scopes, grant.installation_id, position)

    return store._retrying(attempt)


def _new_pair(
    grant: TokenGrant, scopes: list[str], now: datetime, generation: int = 1
) -> tuple[str, IssuedToken, str, IssuedToken]:
    access = new_token("at_")
    refresh = new_token("rt_")
    common: dict[str, Any] = {
        "grant_id": grant.id,
        "app_id": grant.app_id,
        "installation_id": grant.installation_id,
        "seller_id": grant.seller_id,
        "generation": generation,
        "issued_at": now,
    }
    access_record = IssuedToken(
        token_hash=token_hash(access),
        kind=ACCESS,
        scopes=scopes,
        expires_at=now + ACCESS_TOKEN_LIFETIME,
        **common,
    )
    refresh_record = IssuedToken(
        token_hash=token_hash(refresh), kind=REFRESH, scopes=grant.scopes, expires_at=None, **common
    )
    return access, access_record, refresh, refresh_record


def _token_set(
    access: str, refresh: str, scopes: list[str], installation_id: UUID, position: int | None
) -> TokenSet:
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        expires_in=int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        scopes=list(scopes),
        installation_id=installation_id,
        position=position,
    )


# --- checking, introspecting and revoking tokens -------------------------------------------------
def check_token(
    store: AppStore, token: str | None, *, client: AppListing | None = None
) -> TokenCheck:
    """The state of any access or refresh token (for introspection).

    With `client`, another client's token is reported as unknown (RFC 7662 §4).
    Three primary-key reads: the token, its grant, its installation.
    """
    if not token:
        return UNKNOWN
    record = _issued_token(store, token_id_for(token_hash(token)))
    if record is None or (client is not None and record.app_id != client.id):
        return UNKNOWN
    now = store.clock.now()
    reason = _inactive_reason(store, record, now)
    return TokenCheck(
        active=reason is None,
        reason=reason,
        kind=record.kind,
        installation_id=record.installation_id,
        seller_id=record.seller_id,
        app_id=record.app_id,
        scopes=list(record.scopes),
        issued_at=record.issued_at,
        expires_at=record.expires_at,
    )


# Issued tokens never change after they are issued (revocation lives on the grant), so a
# process may keep them: a hot token's check then costs two reads, not three.
TOKEN_CACHE_SIZE = 10_000
_token_caches: WeakKeyDictionary[AppStore, OrderedDict[UUID, IssuedToken]] = WeakKeyDictionary()
_token_cache_lock = Lock()


def _issued_token(store: AppStore, token_id: UUID) -> IssuedToken | None:
    with _token_cache_lock:
        cache = _token_caches.setdefault(store, OrderedDict())
        record = cache.get(token_id)
        if record is not None:
            cache.move_to_end(token_id)
            return record
    record = store._get(token_id, IssuedToken)
    if record is not None:
        with _token_cache_lock:
            cache[token_id] = record
            if len(cache) > TOKEN_CACHE_SIZE:
                cache.popitem(last=False)
    return record


def _inactive_reason(store: AppStore, record: IssuedToken, now: datetime) -> str | None:
    installation = store._get(record.installation_id, Installation)
    if installation is None or installation.status is InstallationStatus.CANCELLED:
        return "cancelled"
    if not installation.is_live(now):
        return "installation_expired"
    grant = store._get(record.grant_id, TokenGrant)
    if grant is None or grant.is_revoked or record.id in grant.revoked_tokens:
        return "revoked"
    if (
        record.kind == REFRESH
        and grant.refresh_generation_state(record.generation, now) == "reused"
    ):
        return "revoked"  # rotated away
    if record.expires_at is not None and now >= record.expires_at:
        return "expired"
    return None


def check_access_token(
    store: AppStore, token: str | None, required_scope: str | None = None
) -> TokenCheck:
    """Validates a bearer access token for an API call.

    Active only for an access token of a live installation, unrevoked, unexpired and (if
    asked) carrying `required_scope`; otherwise `reason` says why (see TokenCheck).
    """
    verdict = check_token(store, token)
    if verdict.kind is not None and verdict.kind != ACCESS:
        return UNKNOWN
    if verdict.active and required_scope is not None and required_scope not in verdict.scopes:
        return TokenCheck(
            active=False,
            reason="insufficient_scope",
            kind=verdict.kind,
            installation_id=verdict.installation_id,
            seller_id=verdict.seller_id,
            app_id=verdict.app_id,
            scopes=verdict.scopes,
            issued_at=verdict.issued_at,
            expires_at=verdict.expires_at,
        )
    return verdict


def revoke_token(store: AppStore, client: AppListing, token: str | None) -> int | None:
    """RFC 7009: revokes a token of this client (unknown tokens are ignored).

    A refresh token revokes its whole grant (and so the access tokens made from it);
    an access token revokes only itself.
    """
    if not token:
        raise OAuthError("invalid_request", "token is required")
    record_id = token_id_for(token_hash(token))

    def attempt() -> int | None:
        record = store._get(record_id, IssuedToken)
        if record is None or record.app_id != client.id:
            return None
        grant = store._get(record.grant_id, TokenGrant)
        if grant is None or grant.is_revoked:
            return None
        now = store.clock.now()
        if record.kind == REFRESH:
            grant.revoke(now, "client")
        elif record.id not in grant.revoked_tokens:
            grant.access_token_revoked(record.id, now)
        return store._commit(grant)

    return store._retrying(attempt)


# --- the seller's authorization record -----------------------------------------------------------
_ACTIVITY = {
    "Granted": "issued",
    "Refreshed": "refreshed",
    "AccessTokenRevoked": "revoked",
    "Revoked": "revoked",
}


def authorization_record(store: AppStore, seller_id: UUID, installation_id: UUID) -> dict[str, Any]:
    """Who authorized what, when, for how long, and the tokens' activity, from the events."""
    installation = store._own_installation(seller_id, installation_id)
    app = store.app(installation.app_id)
    seller = store.account(installation.seller_id)
    now = store.clock.now()
    lifecycle = []
    for e in store.events.get(installation.id):
        name = type(e).__name__
        if name.startswith("Incident"):
            continue
        attributes = vars(e)
        at = next((val for key, val in attributes.items() if key.endswith("_at")), None)
        entry: dict[str, Any] = {"event": name, "at": _iso(at)}
        for key in ("duration", "expires_at", "reason"):
            if key in attributes:
                entry[key] = _iso(attributes[key])
        lifecycle.append(entry)
    grants = []
    activity: list[dict[str, Any]] = []
    ledger = store._get(installation_grants_id(installation.id), InstallationGrants)
    for grant_id in ledger.grant_ids if ledger else []:
        grant = store._get(grant_id, TokenGrant)
        if grant is None:
            continue
        grants.append(
            {
                "grant_id": str(grant.id),
                "granted_at": _iso(grant.granted_at),
                "scopes": grant.scopes,
                "refreshes": grant.generation - 1,
                "revoked_at": _iso(grant.revoked_at),
                "revoke_reason": grant.revoke_reason,
            }
        )
        for e in store.events.get(grant_id):
            name = type(e).__name__
            if name not in _ACTIVITY:
                continue
            attributes = vars(e)
            at = next((val for key, val in attributes.items() if key.endswith("_at")), None)
            item: dict[str, Any] = {
                "action": _ACTIVITY[name],
                "at": _iso(at),
                "grant_id": str(grant_id),
            }
            if name == "Revoked":
                item["what"] = "all tokens of this authorization"
                item["reason"] = attributes.get("reason")
            elif name == "AccessTokenRevoked":
                item["what"] = "one access token"
            activity.append(item)
    if installation.status is InstallationStatus.CANCELLED and installation.ended_at:
        activity.append(
            {
                "action": "revoked",
                "at": _iso(installation.ended_at),
                "what": "all tokens (cancelled)",
            }
        )
    activity.sort(key=lambda item: item["at"] or "")
    return {
        "installation_id": str(installation.id),
        "app": {"id": str(app.id), "slug": app.details["slug"], "name": app.details["name"]},
        "authorized_by": {
            "seller_id": str(seller.id),
            "name": seller.name,
            "email": seller.email,
            "account_type": seller.account_type,
        },
        "via": installation.via,
        "status": installation.effective_status(now).value,
        "duration": installation.duration.value,
        "scopes": [{"scope": s, "description": v.SCOPES[s]} for s in installation.scopes],
        "installed_at": _iso(installation.installed_at),
        "authorized_at": _iso(installation.authorized_at),
        "expires_at": _iso(installation.expires_at),
        "ended_at": _iso(installation.ended_at),
        "end_reason": installation.end_reason,
        "contact_email": installation.contact_email,
        "contact_phone": installation.contact_phone,
        "history": lifecycle,
        "grants": grants,
        "token_activity": activity,
    }


def _iso(value: object) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
