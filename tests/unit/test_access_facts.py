"""The facts a token check reads (application/access_facts.py) answer every question the
check asks exactly as the aggregates they were taken from, whatever state those are in."""

from __future__ import annotations

from datetime import datetime, timedelta

from application import access_facts, installations, tokens
from application.store import Store
from domain.clock import FixedClock
from domain.credentials import token_hash
from domain.installation import Installation
from domain.oauth import IssuedToken, TokenGrant, token_id_for
from tests.unit.test_oauth_domain import World


def _facts(token: IssuedToken, installation: Installation, grant: TokenGrant) -> access_facts.Facts:
    rows = {row.id: row for row in access_facts.rows([token, installation, grant])}
    three = b",".join([rows[token.id].facts, rows[installation.id].facts, rows[grant.id].facts])
    return access_facts.decoded(
        token.id, token.installation_id, token.grant_id, "[" + three.decode() + "]"
    )


def _state(store: Store, token: str) -> tuple[IssuedToken, Installation, TokenGrant]:
    record = store.load(token_id_for(token_hash(token)), IssuedToken)
    assert record is not None
    installation = store.load(record.installation_id, Installation)
    grant = store.load(record.grant_id, TokenGrant)
    assert installation is not None and grant is not None
    return record, installation, grant


def _agree(store: Store, token: str, moments: list[datetime]) -> None:
    record, installation, grant = _state(store, token)
    token_facts, installation_facts, grant_facts = _facts(record, installation, grant)
    for name in ("id", "kind", "grant_id", "app_id", "installation_id", "seller_id"):
        assert getattr(token_facts, name) == getattr(record, name), name
    for name in ("scopes", "generation", "issued_at", "expires_at"):
        assert getattr(token_facts, name) == getattr(record, name), name
    assert installation_facts.status is installation.status
    assert installation_facts.scopes == installation.scopes
    assert installation_facts.expires_at == installation.expires_at
    assert grant_facts.is_revoked == grant.is_revoked
    assert grant_facts.revoked_tokens == grant.revoked_tokens
    for now in moments:
        assert installation_facts.is_live(now) == installation.is_live(now), now
        for generation in range(grant.generation + 2):
            assert grant_facts.refresh_generation_state(
                generation, now
            ) == grant.refresh_generation_state(generation, now), (generation, now)


def test_the_facts_answer_as_the_aggregates_through_a_grants_life(
    store: Store, clock: FixedClock
) -> None:
    world = World(store)
    issued = world.token_set()
    moments = [clock.now() + timedelta(seconds=s) for s in (-1, 0, 30, 59, 60, 61, 3600)]
    _agree(store, issued.access_token, moments)
    refreshed = tokens.refresh_tokens(store, world.client, issued.refresh_token)
    clock.advance(timedelta(seconds=20))
    again = tokens.refresh_tokens(store, world.client, refreshed.refresh_token)
    for token in (issued, refreshed, again):
        _agree(store, token.refresh_token, moments)
    tokens.revoke_token(store, world.client, again.access_token)
    _agree(store, again.access_token, moments)
    tokens.revoke_token(store, world.client, again.refresh_token)
    _agree(store, again.access_token, moments)


def test_the_facts_answer_as_the_installation_in_every_status(
    store: Store, clock: FixedClock
) -> None:
    world = World(store)
    issued = world.token_set()
    installation = store.load(world.installation, Installation)
    assert installation is not None and installation.expires_at is not None
    ends = installation.expires_at
    moments = [ends - timedelta(seconds=1), ends, ends + timedelta(seconds=1)]
    _agree(store, issued.access_token, moments)
    clock.advance(ends - clock.now() + timedelta(seconds=1))
    _agree(store, issued.access_token, moments)  # past its expiry, not yet swept
    installations.expire(store, world.installation)
    _agree(store, issued.access_token, moments)
    other = World(store)
    cut = other.token_set()
    installations.cancel(store, other.seller, other.installation)
    _agree(store, cut.access_token, [clock.now()])
