"""A connection of eventsourcing's PostgreSQL pool, taken and given back without the layers
around it: `PostgresDatastore.get_connection` is a generator context manager around the
pool's own (another one), around `with conn:` (a commit call) — about a tenth of a
command's client time, for an append that is one round trip. `pooled(datastore)` takes the
same connection from the same pool, gives it back the same way (the pool rolls back what
was left open, and renews a broken connection), and raises psycopg's errors as
eventsourcing's, as `get_connection` does (callers and `availability.twice` expect those).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg
from eventsourcing import persistence as es
from eventsourcing.postgres import PostgresDatastore
from psycopg.types.composite import register_composite

# psycopg's errors as eventsourcing raises them (the most specific first).
_AS_EVENTSOURCING: tuple[tuple[type[psycopg.Error], type[es.PersistenceError]], ...] = (
    (psycopg.InterfaceError, es.InterfaceError),
    (psycopg.OperationalError, es.OperationalError),
    (psycopg.DataError, es.DataError),
    (psycopg.IntegrityError, es.IntegrityError),
    (psycopg.InternalError, es.InternalError),
    (psycopg.ProgrammingError, es.ProgrammingError),
    (psycopg.NotSupportedError, es.NotSupportedError),
    (psycopg.DatabaseError, es.DatabaseError),
    (psycopg.Error, es.PersistenceError),
)


def as_eventsourcing(error: psycopg.Error) -> es.PersistenceError:
    """The eventsourcing error `PostgresDatastore.get_connection` raises for `error`."""
    for psycopg_class, eventsourcing_class in _AS_EVENTSOURCING:
        if isinstance(error, psycopg_class):
            return eventsourcing_class(str(error))
    raise AssertionError("unreachable")  # pragma: no cover - psycopg.Error is last


class pooled:
    """`with pooled(datastore) as conn:` — `datastore.get_connection()`, lighter."""

    __slots__ = ("_conn", "_datastore")

    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> psycopg.Connection[Any]:
        datastore = self._datastore
        try:
            datastore.pool.open(
                datastore.pool_open_timeout is not None, datastore.pool_open_timeout or 30.0
            )
            self._conn = conn = datastore.pool.getconn()
            for info in datastore.psycopg_type_adapters.values():  # as get_connection does
                if not conn.adapters.types.get(info.oid):
                    register_composite(info, conn)
        except psycopg.Error as error:
            if self._conn is not None:
                datastore.pool.putconn(self._conn)
                self._conn = None
            raise as_eventsourcing(error) from error
        return conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._datastore.pool.putconn(conn)
        if isinstance(error, psycopg.Error):
            raise as_eventsourcing(error) from error
