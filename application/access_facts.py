"""What a token check needs to know, kept beside the log (on PostgreSQL).

A check asks: is this token's installation live (status, expiry), which scopes does it
grant now, has the token's grant been revoked (or this access token alone), is a refresh
token still the current generation? Replaying the token, its grant and its installation
from the log to answer that costs far more CPU than the question (decoding, replay).

So every append that saves an issued token, a grant or an installation (one that can have
tokens: live once) also writes, in the SAME transaction (application/postgres_log.py), one
row per such aggregate: its id, the
version the row describes, and these facts as compact JSON (a token's row also names its
installation and grant). A check then reads the three rows in one statement. The log stays
the source of truth: the statement answers only rows that describe the aggregate's LATEST
version (no event after theirs, one primary-key probe each), so a row left behind by a
writer that did not keep it (an older release, eventsourcing's own insert function) is
never believed — the check replays the aggregates instead, as before. A revocation, a
cancel or a scope withdrawn is seen by the next check in any process: its row was
committed with its events.

`rows(aggregates)` gives the rows of an append; `decoded(...)` the facts a check reads,
with the attributes `application.tokens` reads of the aggregates themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast
from uuid import UUID

from domain.installation import Installation
from domain.oauth import IssuedToken, TokenGrant
from domain.values import InstallationStatus, installation_live


class FactRow(NamedTuple):
    """One aggregate's row: id, the version it describes, a token's installation and
    grant (None for the others), the facts as UTF-8 JSON."""

    id: UUID
    version: int
    installation_id: UUID | None
    grant_id: UUID | None
    facts: bytes


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """An issued token as a check reads it (an IssuedToken never changes)."""

    id: UUID
    kind: str
    grant_id: UUID
    app_id: UUID
    installation_id: UUID
    seller_id: UUID
    scopes: list[str]
    generation: int
    issued_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class InstallationFacts:
    """An installation as a check reads it."""

    status: InstallationStatus
    expires_at: datetime | None
    scopes: list[str]

    def is_live(self, now: datetime) -> bool:
        """The installation's own rule (domain.values.installation_live)."""
        return installation_live(self.status, self.expires_at, now)


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """A token grant as a check reads it."""

    revoked_at: datetime | None
    revoked_tokens: frozenset[UUID]
    generation: int
    superseded_at: dict[int, datetime]

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def refresh_generation_state(self, generation: int, now: datetime) -> str:
        """The grant's own rule (it reads only `generation` and `superseded_at`)."""
        return TokenGrant.refresh_generation_state(cast(TokenGrant, self), generation, now)


# What `decoded` gives: a token's facts, its installation's, its grant's.
Facts = tuple[TokenFacts, InstallationFacts, GrantFacts]


# An installation's events before which it cannot have tokens (only a live one gets any):
# the appends of install and authorize write no row for it (a row costs an append a sixth
# of its server time); the first token's append writes it (application/tokens.py).
BEFORE_TOKENS = (Installation.Installed, Installation.Authorized)


def rows(aggregates: Iterable[Any], new_events: Iterable[Any] = ()) -> list[FactRow]:
    """The rows of the tokens, grants and installations among `aggregates` (as saved with
    `new_events`); an installation whose new events all come before it can have tokens
    has none."""
    before_tokens: dict[UUID, bool] = {}
    for new in new_events:
        known = before_tokens.get(new.originator_id, True)
        before_tokens[new.originator_id] = known and isinstance(new, BEFORE_TOKENS)
    found = []
    for aggregate in aggregates:
        kind = type(aggregate)
        if kind is Installation and before_tokens.get(aggregate.id, False):
            continue
        if kind is IssuedToken:
            facts: dict[str, Any] = {
                "kind": aggregate.kind,
                "app_id": aggregate.app_id.hex,
                "seller_id": aggregate.seller_id.hex,
                "scopes": aggregate.scopes,
                "generation": aggregate.generation,
                "issued_at": aggregate.issued_at.isoformat(),
                "expires_at": _iso(aggregate.expires_at),
            }
            refs = (aggregate.installation_id, aggregate.grant_id)
        elif kind is TokenGrant:
            facts = {
                "revoked_at": _iso(aggregate.revoked_at),
                "revoked_tokens": sorted(t.hex for t in aggregate.revoked_tokens),
                "generation": aggregate.generation,
                "superseded_at": {
                    str(g): at.isoformat() for g, at in aggregate.superseded_at.items()
                },
            }
            refs = (None, None)
        elif kind is Installation:
            facts = {
                "status": aggregate.status.value,
                "expires_at": _iso(aggregate.expires_at),
                "scopes": aggregate.scopes,
            }
            refs = (None, None)
        else:
            continue
        encoded = json.dumps(facts, separators=(",", ":")).encode()
        found.append(FactRow(aggregate.id, aggregate.version, *refs, encoded))
    return found


def decoded(token_id: UUID, installation_id: UUID, grant_id: UUID, facts: str) -> Facts:
    """The facts of a token's three rows (`facts`: a JSON array of what `rows` wrote for
    the token, its installation and its grant)."""
    t, i, g = json.loads(facts)
    revoked, superseded = g["revoked_tokens"], g["superseded_at"]
    return (
        TokenFacts(
            token_id,
            t["kind"],
            grant_id,
            UUID(t["app_id"]),
            installation_id,
            UUID(t["seller_id"]),
            t["scopes"],
            t["generation"],
            datetime.fromisoformat(t["issued_at"]),
            _datetime(t["expires_at"]),
        ),
        InstallationFacts(InstallationStatus(i["status"]), _datetime(i["expires_at"]), i["scopes"]),
        GrantFacts(
            _datetime(g["revoked_at"]),
            frozenset(UUID(x) for x in revoked) if revoked else frozenset(),
            g["generation"],
            {int(n): datetime.fromisoformat(at) for n, at in superseded.items()}
            if superseded
            else {},
        ),
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _datetime(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None
