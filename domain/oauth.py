"""OAuth 2.0 grants for developer apps: authorization codes, token grants, issued tokens.

RFC 6749 with the practice of RFC 9700: codes are single-use, short-lived and bound to the
client, the redirect URI and (when given) an S256 PKCE challenge; a replayed code revokes
what it issued; refresh tokens rotate, the previous one keeps working for a short grace
window, and a later reuse revokes the whole chain.

Tokens are random and stored only as hashes: each token is an `IssuedToken` aggregate whose
id derives from the token's hash, so checking a token is a few primary-key reads (token,
grant, installation) and nothing is ever stored that would let a reader use a token.
A token is valid only while its installation is live, so cancelling an installation (or its
expiry) cuts every token at once without a write per token. The use cases are in
`application/authorization.py` and `application/tokens.py`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

CODE_LIFETIME = timedelta(minutes=10)
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
# A client that lost the answer to a refresh may retry with the previous refresh token.
REFRESH_GRACE = timedelta(seconds=60)

ACCESS = "access_token"
REFRESH = "refresh_token"

_PKCE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def is_pkce_value(value: str) -> bool:
    """A well-formed PKCE code challenge or verifier (RFC 7636 §4.1: 43–128 unreserved)."""
    return bool(_PKCE.match(value))


def pkce_matches(challenge: str, verifier: str) -> bool:
    """Whether BASE64URL(SHA256(verifier)) equals the S256 challenge (constant time)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)


class AuthorizationCode(Aggregate):
    """A one-time authorization code; its id derives from the code's hash."""

    class Issued(Aggregate.Created):
        code_hash: str
        app_id: UUID
        installation_id: UUID
        seller_id: UUID
        redirect_uri: str
        redirect_uri_given: bool
        scopes: list[str]
        code_challenge: str | None
        issued_at: datetime
        expires_at: datetime

    class Redeemed(Aggregate.Event):
        redeemed_at: datetime

    class ReplayDetected(Aggregate.Event):
        detected_at: datetime

    @staticmethod
    def create_id(code_hash: str) -> UUID:
        return code_id_for(code_hash)

    @event(Issued)
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

    @event(Redeemed)
    def redeem(self, redeemed_at: datetime) -> None:
        self.redeemed_at = redeemed_at

    @event(ReplayDetected)
    def replay_detected(self, detected_at: datetime) -> None:
        self.replayed_at = detected_at


class TokenGrant(Aggregate):
    """One authorization's family of tokens: the refresh chain and its revocation.

    `generation` counts refresh rotations; a refresh token is current when its generation
    equals the grant's; a rotated-away one is honoured until `superseded_at + grace` (a
    client retrying after a lost response), and any later use revokes the whole grant.
    """

    class Granted(Aggregate.Created):
        code_hash: str
        app_id: UUID
        installation_id: UUID
        seller_id: UUID
        scopes: list[str]
        granted_at: datetime

    class Refreshed(Aggregate.Event):
        generation: int
        refreshed_at: datetime
        access_token_id: UUID

    class AccessTokenRevoked(Aggregate.Event):
        token_id: UUID
        revoked_at: datetime

    class Revoked(Aggregate.Event):
        revoked_at: datetime
        reason: str

    @staticmethod
    def create_id(code_hash: str) -> UUID:
        return grant_id_for(code_hash)

    @event(Granted)
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

    @event(Refreshed)
    def refreshed(self, generation: int, refreshed_at: datetime, access_token_id: UUID) -> None:
        self.superseded_at = {
            g: at for g, at in self.superseded_at.items() if refreshed_at < at + REFRESH_GRACE
        }
        self.superseded_at[self.generation] = refreshed_at
        self.generation = generation
        self.rotated_at = refreshed_at

    @event(AccessTokenRevoked)
    def access_token_revoked(self, token_id: UUID, revoked_at: datetime) -> None:
        self.revoked_tokens.add(token_id)

    def revoke(self, now: datetime, reason: str) -> None:
        """Revokes every token of this grant (idempotent)."""
        if not self.is_revoked:
            self._revoked(now, reason)

    @event(Revoked)
    def _revoked(self, revoked_at: datetime, reason: str) -> None:
        self.revoked_at = revoked_at
        self.revoke_reason = reason


class IssuedToken(Aggregate):
    """An access or refresh token, found by the hash of the token (never the token).

    Never changes once issued (revocation lives on the grant), so a process may keep it.
    """

    class Issued(Aggregate.Created):
        token_hash: str
        kind: str
        grant_id: UUID
        app_id: UUID
        installation_id: UUID
        seller_id: UUID
        scopes: list[str]
        generation: int
        issued_at: datetime
        expires_at: datetime | None

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        return token_id_for(token_hash)

    @event(Issued)
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

    class Opened(Aggregate.Created):
        installation_id: UUID

    class GrantAdded(Aggregate.Event):
        grant_id: UUID

    @staticmethod
    def create_id(installation_id: UUID) -> UUID:
        return installation_grants_id(installation_id)

    @event(Opened)
    def __init__(self, installation_id: UUID) -> None:
        self.installation_id = installation_id
        self.grant_ids: list[UUID] = []

    @event(GrantAdded)
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
