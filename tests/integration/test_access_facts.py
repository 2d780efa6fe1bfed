"""The facts token checks read on PostgreSQL (application/access_facts.py): written with the
events that change them, read in one statement, believed only at their aggregate's latest
version, never written by an append that stored nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from application import installations, tokens
from application.access_facts import FactRow
from application.attempts import StaleReads
from application.facts_backfill import backfill
from application.postgres_log import OneTripApplicationRecorder
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.credentials import token_hash
from domain.oauth import token_id_for
from tests.unit.test_oauth_domain import World

pytestmark = pytest.mark.postgres


def _store(url: str) -> Store:
    return build_store(Settings(database_url=url, fast_password_hashing=True), aggregate_cache=100)


@pytest.fixture
def pg(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two processes' stores on one database: one writes, the other checks."""
    one, two = _store(postgres_url), _store(postgres_url)
    yield one, two
    one.close()
    two.close()


def _replayed(store: Store, token: str, monkeypatch: pytest.MonkeyPatch) -> tokens.TokenCheck:
    """The verdict from the aggregates themselves (the facts ignored)."""
    with monkeypatch.context() as patch:
        patch.setattr(store, "access_facts", lambda token_id: None)
        store.forget()
        return tokens.check_token(store, token)


def test_a_check_reads_the_facts_alone_and_agrees_with_the_aggregates(
    pg: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, checker = pg
    world = World(writer)
    issued = world.token_set()
    expected = _replayed(checker, issued.access_token, monkeypatch)
    checker.forget()

    def no_replay(*args: Any) -> Any:
        raise AssertionError("the aggregates were read")

    monkeypatch.setattr(checker, "load", no_replay)
    monkeypatch.setattr(checker, "current_all", no_replay)
    assert tokens.check_access_token(checker, issued.access_token) == expected
    assert expected.active and expected.scopes == ["orders.read"]
    introspected = tokens.check_token(checker, issued.refresh_token)
    assert introspected.active and introspected.kind == "refresh_token"


def test_every_change_a_check_depends_on_is_seen_at_once_by_another_process(
    pg: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, checker = pg
    world = World(writer)
    first, second = world.token_set(), world.token_set()
    assert tokens.check_access_token(checker, first.access_token).active
    tokens.revoke_token(writer, world.client, first.access_token)  # this token alone
    assert tokens.check_access_token(checker, first.access_token).reason == "revoked"
    assert tokens.check_access_token(checker, second.access_token).active
    refreshed = tokens.refresh_tokens(writer, world.client, second.refresh_token)
    assert tokens.check_token(checker, second.refresh_token).active  # inside the grace
    tokens.revoke_token(writer, world.client, refreshed.refresh_token)  # the whole grant
    assert tokens.check_access_token(checker, refreshed.access_token).reason == "revoked"
    third = world.token_set()
    installations.cancel(writer, world.seller, world.installation)
    assert tokens.check_access_token(checker, third.access_token).reason == "cancelled"
    for token in (first, second, refreshed, third):
        for presented in (token.access_token, token.refresh_token):
            assert tokens.check_token(checker, presented) == _replayed(
                checker, presented, monkeypatch
            )


def test_facts_a_writer_did_not_keep_are_not_believed(
    pg: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel stored by a writer that keeps no facts (an older release, eventsourcing's
    insert function) leaves the installation's row behind its version: the check replays."""
    writer, checker = pg
    world = World(writer)
    issued = world.token_set()
    assert tokens.check_access_token(checker, issued.access_token).active
    monkeypatch.setattr(OneTripApplicationRecorder, "keeps_facts", False)
    installations.cancel(writer, world.seller, world.installation)
    monkeypatch.undo()
    token_id = token_id_for(token_hash(issued.access_token))
    assert checker.access_facts(token_id) is None
    assert tokens.check_access_token(checker, issued.access_token).reason == "cancelled"


def test_an_append_that_stores_nothing_writes_no_facts(postgres_url: str) -> None:
    store = _store(postgres_url)
    try:
        recorder: Any = store.application.recorder
        read, new = uuid.uuid4(), uuid.uuid4()
        recorder.insert_events([StoredEvent(read, 1, "t", b"{}"), StoredEvent(read, 2, "t", b"{}")])
        with pytest.raises(StaleReads):  # `read` changed after version 1: nothing stored
            recorder.insert_events(
                [StoredEvent(new, 1, "t", b"{}")],
                unchanged={read: 1},
                facts=[FactRow(new, 1, None, None, b"{}")],
            )
        recorder.insert_events(
            [StoredEvent(new, 1, "t", b"{}")],
            unchanged={read: 2},
            facts=[FactRow(new, 1, None, None, b'{"kept":1}')],
        )
        with psycopg.connect(postgres_url) as conn:
            rows = conn.execute(
                f"SELECT id, version, facts FROM {recorder.facts_table_name} WHERE id = ANY(%s)",
                ([read, new],),
            ).fetchall()
        assert rows == [(new, 1, b'{"kept":1}')]
    finally:
        store.close()


def test_an_installation_has_a_row_once_it_can_have_tokens(
    pg: tuple[Store, Store], postgres_url: str
) -> None:
    """Install and authorize write none (no token can exist before: their appends stay as
    cheap as before); the first token's append writes it, and later changes keep it."""
    writer, checker = pg
    world = World(writer)
    recorder: Any = writer.application.recorder

    def row_version() -> int | None:
        with psycopg.connect(postgres_url) as conn:
            found = conn.execute(
                f"SELECT version FROM {recorder.facts_table_name} WHERE id = %s",
                (world.installation,),
            ).fetchone()
        return found[0] if found else None

    assert row_version() is None
    issued = world.token_set()
    assert row_version() == 2  # installed, authorized
    installations.renew(writer, world.seller, world.installation, "90d")
    assert row_version() == 3
    token_id = token_id_for(token_hash(issued.access_token))
    assert checker.access_facts(token_id) is not None


def test_migrate_writes_the_facts_a_store_written_without_them_lacks(
    pg: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written by a release that kept no facts: its tokens are replayed at each check
    until `appstore migrate` writes their rows (and their installations' and grants');
    then the check reads the facts alone, with the same verdicts, and a second run writes
    none."""
    writer, checker = pg
    monkeypatch.setattr(OneTripApplicationRecorder, "keeps_facts", False)  # the old release
    world = World(writer)
    live, revoked = world.token_set(), world.token_set()
    tokens.revoke_token(writer, world.client, revoked.access_token)
    other = World(writer)
    cancelled = other.token_set()
    installations.cancel(writer, other.seller, other.installation)
    monkeypatch.undo()
    issued = {
        live.access_token: "",
        live.refresh_token: "",
        revoked.access_token: "revoked",
        cancelled.access_token: "cancelled",
    }
    ids = [token_id_for(token_hash(token)) for token in issued]
    assert all(checker.access_facts(token_id) is None for token_id in ids)
    expected = {token: _replayed(checker, token, monkeypatch) for token in issued}
    assert [expected[t].reason or "" for t in issued] == list(issued.values())

    seen: list[tuple[int, int]] = []
    written = backfill(writer, lambda done, total: seen.append((done, total)))
    assert written >= len(issued) + 4  # the tokens, two installations, at least two grants
    assert seen and seen[-1][0] == seen[-1][1]
    checker.forget()

    def no_replay(*args: Any) -> Any:
        raise AssertionError("the aggregates were read")

    with monkeypatch.context() as patch:
        patch.setattr(checker, "load", no_replay)
        patch.setattr(checker, "current_all", no_replay)
        assert {token: tokens.check_token(checker, token) for token in issued} == expected
    assert backfill(writer) == 0  # idempotent
    installations.renew(writer, world.seller, world.installation, "30d")  # kept from now on
    assert checker.access_facts(ids[0]) is not None
