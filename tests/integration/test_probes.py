"""Token checks' freshness probes on PostgreSQL: kept connections, one round trip, and a
fallback through the pool whenever a kept connection cannot answer."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from application import accounts, installations, tokens
from application.probes import APPLICATION_NAME, Probes
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from tests import factories as f
from tests.unit.test_oauth_domain import World


@pytest.fixture
def pg_store(postgres_url: str, clock: FixedClock) -> Any:
    store = build_store(
        Settings(database_url=postgres_url, fast_password_hashing=True), clock=clock
    )
    yield store
    store.close()


def probe_backends(url: str) -> list[int]:
    """The server processes of the probes' kept connections."""
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchall()
    return [r[0] for r in rows]


def test_a_check_probes_on_a_kept_connection_and_survives_losing_it(
    pg_store: Any, postgres_url: str
) -> None:
    world = World(pg_store)
    issued = world.token_set()
    assert tokens.check_access_token(pg_store, issued.access_token).active  # copies kept
    assert tokens.check_access_token(pg_store, issued.access_token).active  # probed
    kept = probe_backends(postgres_url)
    assert len(kept) == 1  # the probe ran on a connection of its own, still open
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (kept[0],))
    installations.cancel(pg_store, world.seller, world.installation)
    # The kept connection is dead: the probe falls back to the pool and still sees the cancel.
    assert tokens.check_access_token(pg_store, issued.access_token).reason == "cancelled"
    assert tokens.check_access_token(pg_store, issued.access_token).reason == "cancelled"
    assert probe_backends(postgres_url) not in ([], kept)  # a new kept connection


def test_probes_stand_aside_when_they_cannot_connect() -> None:
    attempts = []

    def refuse() -> psycopg.Connection[Any]:
        attempts.append(1)
        raise psycopg.OperationalError("connection refused")

    probes = Probes(refuse, size=2, pause=60)
    assert probes.rows("SELECT 1", []) is None
    assert probes.rows("SELECT 1", []) is None  # resting: no second attempt
    assert attempts == [1]
    probes.close()


def test_a_session_check_probes_on_a_kept_connection(pg_store: Any, postgres_url: str) -> None:
    """A session check's question (has the session ended?) goes through the probes too."""
    accounts.register_account(pg_store, "seller", "ed@shop.example.com", f.PASSWORD, "Ed")
    started = accounts.start_session(pg_store, "ed@shop.example.com", f.PASSWORD)
    assert accounts.session_for(pg_store, started.token) is not None  # remembered, probed
    assert accounts.session_for(pg_store, started.token) is not None
    assert len(probe_backends(postgres_url)) == 1
    accounts.end_session(pg_store, started.token)
    assert accounts.session_for(pg_store, started.token) is None


def test_a_kept_connection_keeps_its_cursor(postgres_url: str) -> None:
    """A cursor per read set its adapters up again each time (a tenth of a check)."""
    made: list[object] = []

    def connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(postgres_url, autocommit=True)
        cursor = conn.cursor

        def counted(*args: Any, **kwargs: Any) -> Any:
            made.append(conn)
            return cursor(*args, **kwargs)

        conn.cursor = counted  # type: ignore[method-assign]
        return conn

    probes = Probes(connect, size=1)
    try:
        for n in range(5):
            assert probes.rows("SELECT %s::int", [n]) == [(n,)]
        assert len(made) == 1
    finally:
        probes.close()
