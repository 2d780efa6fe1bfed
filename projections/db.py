"""The read side's database: an SQLAlchemy engine on the event store's own database.

The read models live next to the events (same SQLite file or PostgreSQL database), so a
projection can write its rows and its tracking position in one local transaction.

Reads on the serving thread: on an embedded SQLite file a read model's query is work of
this process (no network to wait on; in WAL mode a reader never waits for the writer), so
the API runs it where the request is, not in the threadpool, whose hand-over both ways was
a fifth of a read's CPU (`reads_in_process`). Such a read must not wait for other threads'
work either, nor do long work (other requests would wait for it): a lock it would wait for
(`holding`) or long work it would start (`long_work`) raises `WouldWait` instead, and the
caller runs the read again in the threadpool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both backends (SQLite keeps naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlalchemy_url(database_url: str) -> str:
    """The SQLAlchemy URL of an APPSTORE_DATABASE_URL (psycopg 3 driver on PostgreSQL)."""
    scheme, _, rest = database_url.partition("://")
    base = scheme.split("+")[0]
    if base in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if base == "sqlite":
        return f"sqlite://{rest}"
    raise ValueError(f"unsupported database URL scheme {scheme!r}")


# Read-model connections kept open on SQLite (one per API worker thread, see below).
SQLITE_POOL = 40


def create_read_engine(database_url: str, *, pool_size: int = 5, timeout: int = 2) -> Engine:
    """An engine on the read-model database; on PostgreSQL `timeout` bounds the wait for a
    connection (pool and connect), so reads fail fast when the database is away.

    On SQLite, transactions opened with `execution_options(immediate=True)` take the write
    lock at BEGIN, so two projector processes cannot read the same tracking position.
    """
    url = sqlalchemy_url(database_url)
    if url.startswith("sqlite"):
        # The embedded store serialises writers on one file lock: waits there are normal.
        # The pool keeps a connection per API worker thread (anyio's 40 by default): past
        # SQLAlchemy's 5 + 10 overflow, connections were opened (with their PRAGMAs) and
        # closed per request under load, and threads queued for the 15. The overflow keeps
        # room beside the worker threads for the serving thread's reads (api/routing.py)
        # and the background loops.
        sized = {} if ":memory:" in url else {"pool_size": SQLITE_POOL, "max_overflow": SQLITE_POOL}
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **sized
        )

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            immediate = conn.get_execution_options().get("immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=timeout,
        pool_recycle=600,
        connect_args={"connect_timeout": timeout},
    )


def reads_in_process(engine: Engine) -> bool:
    """Whether reads of this engine are this process's own work: an SQLite file."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and bool(database) and database != ":memory:"


class WouldWait(Exception):
    """A read run `not_waiting` met a lock another thread holds (see `holding`), or long
    work (`long_work`)."""


_reading = threading.local()


@contextmanager
def not_waiting() -> Iterator[None]:
    """Within: `holding` a lock another thread holds raises WouldWait, not waits."""
    before = getattr(_reading, "not_waiting", False)
    _reading.not_waiting = True
    try:
        yield
    finally:
        _reading.not_waiting = before


@contextmanager
def holding(lock: threading.Lock) -> Iterator[None]:
    """`with lock:`, but raises WouldWait instead of waiting within `not_waiting`."""
    if not lock.acquire(blocking=not getattr(_reading, "not_waiting", False)):
        raise WouldWait("a lock another thread holds")
    try:
        yield
    finally:
        lock.release()


def long_work(what: str) -> None:
    """Said before work that takes long (building an index): within `not_waiting`, raises
    WouldWait, so that the caller does it in the threadpool."""
    if getattr(_reading, "not_waiting", False):
        raise WouldWait(what)
