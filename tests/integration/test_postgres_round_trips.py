"""The PostgreSQL event log's round trips (application/postgres_log.py, availability.py):
an append is one, and a command with kept copies makes no other, a refused append stores nothing and leaves a
clean connection, and connections killed under the pool are replaced on the second attempt
(no ping on each checkout any more)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from application import installations, sync_events, tokens
from application.prepared import Prepared, Values
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.claims import InstallationSlot
from domain.incident import SyncEvent
from domain.installation import Installation
from domain.values import InstallationStatus
from tests import factories as f
from tests.unit.test_oauth_domain import World

pytestmark = pytest.mark.postgres


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def cached(postgres_url: str) -> Iterator[Store]:
    store = build_store(
        Settings(database_url=postgres_url, fast_password_hashing=True), aggregate_cache=1000
    )
    yield store
    store.close()


@contextlib.contextmanager
def syncs(store: Store, monkeypatch: pytest.MonkeyPatch, trace: Path) -> Iterator[list[int]]:
    """Counts the round trips the store makes inside the block: the messages that ask the
    server to answer (Sync ends an extended-protocol batch, Query is a simple one)."""
    pool = store.application.recorder.datastore.pool  # type: ignore[attr-defined]
    getconn, putconn = pool.getconn, pool.putconn
    fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)

    def traced(*args: Any, **kwargs: Any) -> Any:
        conn = getconn(*args, **kwargs)
        conn.pgconn.trace(fd)
        return conn

    def untraced(conn: Any) -> None:
        conn.pgconn.untrace()
        putconn(conn)

    counted: list[int] = []
    monkeypatch.setattr(pool, "getconn", traced)
    monkeypatch.setattr(pool, "putconn", untraced)
    try:
        yield counted
    finally:
        monkeypatch.undo()
        os.close(fd)
    lines = trace.read_text(errors="replace").splitlines()
    asks = (["F", "Sync"], ["F", "Query"])
    counted.append(sum(1 for line in lines if line.split("\t")[1:4:2] in asks))


def test_install_and_authorize_are_one_round_trip_each(
    cached: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The append alone (eventsourcing's own takes five): the listing and the installation
    the install saved are kept copies, the seller's slot for the app is new, and the
    append confirms all three (application/attempts.py)."""
    developer, seller = f.developer(cached), f.seller(cached)
    apps = [f.app(cached, developer) for _ in range(12)]
    for app in apps[:10]:  # every pooled connection has prepared its statements
        f.active_installation(cached, seller, app)
    for app in apps[10:]:
        with syncs(cached, monkeypatch, tmp_path / "install.trace") as installing:
            installed = installations.install(
                cached, seller, app, "90d", "ops@shop.example.com", "+14155550101"
            )
        with syncs(cached, monkeypatch, tmp_path / "authorize.trace") as authorizing:
            installations.authorize(cached, seller, installed.id)
        assert installing == [1] and authorizing == [1]
    # The install's append (three events) checks the listing it only read (one probe); the
    # authorize's appends to the installation from the version it trusted: the unique key
    # is check enough. Both run statements prepared earlier on that connection.
    install_trace = (tmp_path / "install.trace").read_text(errors="replace")
    authorize_trace = (tmp_path / "authorize.trace").read_text(errors="replace")
    assert "EXECUTE appstore_events_3_1 (" in install_trace and "PREPARE" not in install_trace
    assert "EXECUTE appstore_events_1_0 (" in authorize_trace
    assert "PREPARE" not in authorize_trace


def test_without_access_facts_a_cold_token_check_is_two_round_trips_from_a_snapshot_on(
    cached: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """When the log keeps no facts for a token (issued before they were kept; their read
    is tests/integration/test_access_facts.py): the token record, then its installation
    (newest snapshot and the events after it) and its grant together — eventsourcing's
    repository reads a snapshot and its events in two, and the installation and grant were
    read one after the other."""
    monkeypatch.setattr(cached, "access_facts", lambda token_id: None)
    world = World(cached)
    issued = world.token_set()
    for n in range(105):  # past the snapshot interval (100), then a few more
        report = SyncEvent(f"e{n}", world.installation, "failure", "orders", _now(), f"E{n % 4}")
        sync_events.record_sync_event(cached, report)
    assert cached.application.snapshots is not None
    assert [s.originator_version for s in cached.application.snapshots.get(world.installation)]
    expected = tokens.check_access_token(cached, issued.access_token)
    replayed = cached.load_version(world.installation)
    for _ in range(6):  # every pooled connection has prepared its statements
        cached.forget()
        tokens.check_access_token(cached, issued.access_token)
    cached.forget()  # a cold process: nothing kept
    with syncs(cached, monkeypatch, tmp_path / "check.trace") as checking:  # (undoes the patch)
        monkeypatch.setattr(cached, "access_facts", lambda token_id: None)
        checked = tokens.check_access_token(cached, issued.access_token)
    assert checking == [2]
    assert checked == expected and checked.active
    loaded = cached.load(world.installation, Installation)
    assert loaded is not None and replayed is not None
    assert loaded.__dict__ == replayed.__dict__ and loaded.version > 100


def test_an_append_returns_the_positions_it_stored(cached: Store) -> None:
    seller, app = f.seller(cached), f.app(cached)
    head = cached.head()
    installed = installations.install(
        cached, seller, app, "90d", "ops@shop.example.com", "+14155550101"
    )
    stored = cached.notifications(head + 1, 10)
    assert installed.position == stored[-1].id == head + 3  # slot opened, claimed, installed
    assert [n.topic.rsplit(".", 1)[-1] for n in stored] == ["Opened", "Claimed", "Installed"]


def test_a_refused_append_stores_nothing_and_leaves_clean_connections(
    cached: Store, postgres_url: str
) -> None:
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)
    first = cached.load(installation_id, Installation)
    second = cached.load(installation_id, Installation)
    assert first is not None and second is not None
    installations.cancel(cached, seller, installation_id)
    slot = InstallationSlot(seller_id=seller, app_id=f.app(cached))  # would be appended too
    head = cached.head()
    first.cancel(cached.clock.now())
    with pytest.raises(IntegrityError):
        cached.save(slot, first)
    assert cached.head() == head
    assert cached.load(slot.id, InstallationSlot) is None  # nothing of that transaction
    with psycopg.connect(postgres_url) as admin:
        stuck = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%'"
        ).fetchone()
    assert stuck == (0,)
    for _ in range(6):  # every pooled connection appends again
        f.seller(cached)
    found = cached.load(installation_id, Installation)
    assert found is not None and found.status is InstallationStatus.CANCELLED


def test_an_append_prepares_its_statement_once_per_connection_and_again_when_it_is_gone(
    cached: Store, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """psycopg deallocates all of a connection's prepared statements after a rollback
    (DEALLOCATE ALL) when it prepared some of its own: the next append prepares again."""
    seller = f.seller(cached)
    with syncs(cached, monkeypatch, tmp_path / "first.trace") as first:
        f.app(cached)  # (sign-up and listing appends, on whichever connection)
    with syncs(cached, monkeypatch, tmp_path / "again.trace") as again:
        for _ in range(10):
            f.app(cached)
    assert first and again
    prepares_again = (tmp_path / "again.trace").read_text(errors="replace").count("PREPARE ")
    assert prepares_again < 10  # each shape once per pooled connection, not per append
    pool = cached.application.recorder.datastore.pool  # type: ignore[attr-defined]
    for _ in range(pool.max_size):  # every pooled connection loses its statements
        with pool.connection() as conn:
            conn.execute("DEALLOCATE ALL")
    installed = [
        installations.install(
            cached, seller, f.app(cached), "90d", "ops@shop.example.com", "+14155550101"
        )
        for _ in range(3)
    ]
    for installation in installed:
        found = cached.load(installation.id, Installation)
        assert found is not None and found.status is InstallationStatus.PENDING_AUTHORIZATION


def test_a_statement_gone_beside_one_never_prepared_is_prepared_again(postgres_url: str) -> None:
    """An append of two statements: one prepared earlier on the connection and deallocated
    since (psycopg's DEALLOCATE ALL after another append's rollback, as when racing requests
    lose), one of a shape the connection never had. Preparing the second must not hide that
    the first is gone (a race of four code exchanges once failed so)."""
    prepared = Prepared()

    def total(rows: Values, probes: Values) -> bytes:
        return b"SELECT " + b" + ".join(row[0] for row in rows)

    with psycopg.connect(postgres_url) as conn:
        one = prepared.part(b"test", (b"bigint",), total, [[b"1"]], [])
        assert prepared.run(conn, one.run, [one]) == [1]
        conn.execute("DEALLOCATE ALL")  # what psycopg's rollback sends
        conn.commit()
        two = prepared.part(b"test", (b"bigint",), total, [[b"2"], [b"3"]], [])
        assert prepared.run(conn, one.run + b"; " + two.run, [one, two]) == [5]


def test_an_append_larger_than_any_prepared_shape_is_written_whole(
    cached: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seller = f.seller(cached)
    for _ in range(10):  # every pooled connection has appended (its session is known)
        f.app(cached)
    slots = [InstallationSlot(seller_id=seller, app_id=uuid4()) for _ in range(12)]
    head = cached.head()
    with syncs(cached, monkeypatch, tmp_path / "big.trace") as appending:
        cached.save(*slots)  # twelve new aggregates in one append: past the prepared shapes
    trace = (tmp_path / "big.trace").read_text(errors="replace")
    assert appending == [1] and "EXECUTE" not in trace and "PREPARE" not in trace
    assert cached.head() == head + 12
    assert all(cached.load(s.id, InstallationSlot) is not None for s in slots)


def test_connections_killed_under_the_pool_are_replaced_on_the_second_attempt(
    cached: Store, postgres_url: str
) -> None:
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS k"
        ).fetchone()
    assert killed is not None and killed[0] >= 2  # the pool keeps several open
    # Each call's first attempt may take a dead connection; the second must not.
    found = cached.load(installation_id, Installation)
    assert found is not None and found.status is InstallationStatus.ACTIVE
    assert installations.renew(cached, seller, installation_id, "30d").position is not None
