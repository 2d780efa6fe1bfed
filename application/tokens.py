"""The OAuth token endpoint's use cases: client authentication, code exchange, refresh with
rotation, token checks (introspection, API calls) and revocation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from application.access_facts import GrantFacts, InstallationFacts, TokenFacts
from application.store import Store
from domain import values as v
from domain.app_listing import AppListing, app_id_from_client_id
from domain.credentials import new_token, token_hash, token_matches
from domain.errors import OAuthError
from domain.installation import Installation
from domain.oauth import (
    ACCESS,
    ACCESS_TOKEN_LIFETIME,
    REFRESH,
    AuthorizationCode,
    InstallationGrants,
    IssuedToken,
    TokenGrant,
    code_id_for,
    installation_grants_id,
    is_pkce_value,
    pkce_matches,
    token_id_for,
)
from domain.values import InstallationStatus


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint answers (the tokens are shown here only)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]
    installation_id: UUID
    position: int | None


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


UNKNOWN = TokenCheck(active=False, reason="unknown")


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def authenticate_client(store: Store, client_id: str | None, secret: str | None) -> AppListing:
    """The app whose OAuth client credentials these are, or an `invalid_client` OAuthError."""
    app_id = app_id_from_client_id(client_id or "") if client_id and secret else None
    app = store.load(app_id, AppListing) if app_id else None
    if app is None or not token_matches(secret or "", app.client_secret_hash):
        raise OAuthError("invalid_client", "client authentication failed")
    return app


def exchange_code(
    store: Store,
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
        record = store.load(code_id_for(code_hash), AuthorizationCode)
        if record is None or record.app_id != client.id:
            raise _invalid_grant("unknown authorization code")
        if record.redeemed_at is not None:
            # RFC 6749 §4.1.2 / RFC 9700 §4.5: a replay revokes what the code issued.
            grant = store.load(record.grant_id, TokenGrant)
            if grant is not None:
                grant.revoke(now, "code_reuse")
            if record.replayed_at is None:
                record.replay_detected(now)
            store.save(record, grant)
            raise _invalid_grant("authorization code was already used")
        if now >= record.expires_at:
            raise _invalid_grant("authorization code expired")
        if record.redirect_uri_given and not redirect_uri:
            # RFC 6749 §4.1.3: required when the authorization request carried one.
            raise OAuthError("invalid_request", "redirect_uri is required for this code")
        if (record.redirect_uri_given or redirect_uri) and redirect_uri != record.redirect_uri:
            raise _invalid_grant("redirect_uri does not match the authorization request")
        if record.code_challenge is not None:
            if not code_verifier or not is_pkce_value(code_verifier):
                raise _invalid_grant("code_verifier is missing or malformed")
            if not pkce_matches(record.code_challenge, code_verifier):
                raise _invalid_grant("code_verifier does not match the code_challenge")
        elif code_verifier:
            # RFC 9700 §4.8.2: a verifier without a challenge hints at a downgrade attack.
            raise _invalid_grant("code_verifier given but no code_challenge was sent")
        installation = store.load(record.installation_id, Installation)
        if installation is None or not installation.is_live(now):
            raise _invalid_grant("the installation is no longer active")
        # A scope revoked since the code was issued is not issued.
        scopes = [s for s in record.scopes if s in installation.scopes]
        if not scopes:
            raise _invalid_grant("the seller has revoked every scope of this code")
        record.redeem(now)
        grant = TokenGrant(
            code_hash=code_hash,
            app_id=record.app_id,
            installation_id=record.installation_id,
            seller_id=record.seller_id,
            scopes=scopes,
            granted_at=now,
        )
        ledger = store.load(installation_grants_id(installation.id), InstallationGrants)
        if ledger is None:
            ledger = InstallationGrants(installation_id=installation.id)
        ledger.add(grant.id)
        access, access_record, refresh, refresh_record = _new_pair(grant, scopes, now)
        # The installation, unchanged, for its row of token-check facts (access_facts.py).
        position = store.save(record, grant, ledger, access_record, refresh_record, installation)
        return _token_set(access, refresh, scopes, installation.id, position)

    return store.retrying(attempt)


def refresh_tokens(
    store: Store, client: AppListing, refresh_token: str | None, scope: str | None = None
) -> TokenSet:
    """grant_type=refresh_token (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14)."""
    if not refresh_token:
        raise OAuthError("invalid_request", "refresh_token is required")
    record_id = token_id_for(token_hash(refresh_token))

    def attempt() -> TokenSet:
        now = store.clock.now()
        record = store.load(record_id, IssuedToken)
        if record is None or record.kind != REFRESH or record.app_id != client.id:
            raise _invalid_grant("unknown refresh token")
        grant = store.load(record.grant_id, TokenGrant)
        if grant is None or grant.is_revoked:
            raise _invalid_grant("refresh token was revoked")
        installation = store.load(record.installation_id, Installation)
        if installation is None or not installation.is_live(now):
            raise _invalid_grant("the installation is no longer active")
        if grant.refresh_generation_state(record.generation, now) == "reused":
            grant.revoke(now, "refresh_reuse")
            store.save(grant)
            raise _invalid_grant("refresh token was already used; the whole chain is revoked")
        # A scope the seller revoked since the grant stays revoked (RFC 6749 §6).
        scopes = [s for s in grant.scopes if s in installation.scopes]
        if scope:
            asked = scope.split()
            if any(s not in scopes for s in asked):
                raise OAuthError("invalid_scope", "scope exceeds what was granted")
            scopes = v.scopes(asked)
        generation = grant.generation + 1
        access, access_record, refresh, refresh_record = _new_pair(
            grant, scopes, now, generation=generation
        )
        grant.refreshed(generation, now, access_record.id)
        position = store.save(grant, access_record, refresh_record, installation)
        return _token_set(access, refresh, scopes, grant.installation_id, position)

    return store.retrying(attempt)


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


# --- checking and revoking tokens ------------------------------------------------------------
def check_token(store: Store, token: str | None, *, client: AppListing | None = None) -> TokenCheck:
    """The state of any access or refresh token (for introspection).

    With `client`, another client's token is reported as unknown (RFC 7662 §4).
    Its scopes are the token's own narrowed to what the installation grants now: a scope
    the seller revoked leaves every live token at once.
    One read on PostgreSQL: the facts of the token, its grant and its installation kept
    beside the log, each at its latest version (application/access_facts.py). Without
    them (SQLite, an unknown token, a token issued before they were kept): the token
    (issued tokens never change, so a process remembers them), then the grant and the
    installation, replayed only when they have a newer event than the copy this process
    read last (`Store.current`).
    """
    if not token:
        return UNKNOWN
    token_id = token_id_for(token_hash(token))
    record: IssuedToken | TokenFacts | None
    installation: Installation | InstallationFacts | None
    grant: TokenGrant | GrantFacts | None
    known = store.access_facts(token_id)
    if known is not None:
        record, installation, grant = known
    else:
        record = store.remembered(("token", token_id), lambda: store.load(token_id, IssuedToken))
    if record is None or (client is not None and record.app_id != client.id):
        return UNKNOWN
    now = store.clock.now()
    if known is None:  # both kept copies are checked for newer events in one read
        installation, grant = store.current_all(
            (record.installation_id, Installation), (record.grant_id, TokenGrant)
        )
    reason = _inactive_reason(record, installation, grant, now)
    granted = installation.scopes if installation is not None else []
    return TokenCheck(
        active=reason is None,
        reason=reason,
        kind=record.kind,
        installation_id=record.installation_id,
        seller_id=record.seller_id,
        app_id=record.app_id,
        scopes=[s for s in record.scopes if s in granted],
        issued_at=record.issued_at,
        expires_at=record.expires_at,
    )


def _inactive_reason(
    record: IssuedToken | TokenFacts,
    installation: Installation | InstallationFacts | None,
    grant: TokenGrant | GrantFacts | None,
    now: datetime,
) -> str | None:
    if installation is None or installation.status is InstallationStatus.CANCELLED:
        return "cancelled"
    if not installation.is_live(now):
        return "installation_expired"
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
    store: Store, token: str | None, required_scope: str | Sequence[str] | None = None
) -> TokenCheck:
    """Validates a bearer access token for an API call.

    Active only for an access token of a live installation, unrevoked, unexpired and (if
    asked) carrying `required_scope` (or one of them, given several); otherwise `reason`
    says why (see TokenCheck).
    """
    verdict = check_token(store, token)
    if verdict.kind is not None and verdict.kind != ACCESS:
        return UNKNOWN
    accepted = [required_scope] if isinstance(required_scope, str) else required_scope or []
    if verdict.active and accepted and not any(s in verdict.scopes for s in accepted):
        return replace(verdict, active=False, reason="insufficient_scope")
    return verdict


def revoke_token(store: Store, client: AppListing, token: str | None) -> int | None:
    """RFC 7009: revokes a token of this client (unknown tokens are ignored).

    A refresh token revokes its whole grant (and so the access tokens made from it);
    an access token revokes only itself.
    """
    if not token:
        raise OAuthError("invalid_request", "token is required")
    record_id = token_id_for(token_hash(token))

    def attempt() -> int | None:
        record = store.load(record_id, IssuedToken)
        if record is None or record.app_id != client.id:
            return None
        grant = store.load(record.grant_id, TokenGrant)
        if grant is None or grant.is_revoked:
            return None
        now = store.clock.now()
        if record.kind == REFRESH:
            grant.revoke(now, "client")
        elif record.id not in grant.revoked_tokens:
            grant.access_token_revoked(record.id, now)
        return store.save(grant)

    return store.retrying(attempt)
