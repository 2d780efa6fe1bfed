"""`pooled(datastore)` (application/pooled.py): a connection of eventsourcing's pool, given
back whatever happens, its errors raised as eventsourcing's (as `get_connection` does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing import persistence as es

from application.pooled import as_eventsourcing, pooled
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def datastore(postgres_url: str) -> Iterator[Any]:
    store: Store = build_store(Settings(database_url=postgres_url, fast_password_hashing=True))
    yield store.application.recorder.datastore  # type: ignore[attr-defined]
    store.close()


def in_use(datastore: Any) -> int:
    stats = datastore.pool.get_stats()
    return int(stats.get("pool_size", 0) - stats.get("pool_available", 0))


def test_the_connection_is_the_pools_and_goes_back_to_it(datastore: Any) -> None:
    with pooled(datastore) as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert in_use(datastore) == 1
    assert in_use(datastore) == 0
    with datastore.get_connection() as again:  # the same pool hands it out again
        assert again.execute("SELECT 2 AS two").fetchone() == {"two": 2}


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT 1/0", es.DataError),
        ("SELECT * FROM no_such_table", es.ProgrammingError),
        (
            "CREATE TEMP TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1), (1)",
            es.IntegrityError,
        ),
    ],
)
def test_errors_come_as_eventsourcing_raises_them_and_the_connection_goes_back(
    datastore: Any, statement: str, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as raised, pooled(datastore) as conn:
        conn.execute(statement)
    assert isinstance(raised.value.__cause__, psycopg.Error)
    with datastore.get_connection() as conn:  # given back in a clean state
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert in_use(datastore) == 0


def test_every_psycopg_error_maps_as_get_connection_maps_it() -> None:
    assert type(as_eventsourcing(psycopg.OperationalError("x"))) is es.OperationalError
    assert type(as_eventsourcing(psycopg.InterfaceError("x"))) is es.InterfaceError
    assert type(as_eventsourcing(psycopg.errors.UniqueViolation("x"))) is es.IntegrityError
    assert type(as_eventsourcing(psycopg.Error("x"))) is es.PersistenceError
