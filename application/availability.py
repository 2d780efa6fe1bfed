"""When the store cannot serve: recognising it, and failing fast instead of hanging.

`unavailable_reason(error)` says whether an error means "the store cannot serve now" (down,
restarting, read-only, permission denied, timed out, locked) rather than a bug; the API
answers those with 503 + Retry-After (api/problems.py) and the background loops log them
as one line (application/loops.py).

`FailFastPostgresFactory` is eventsourcing's PostgreSQL persistence with bounded waits:
each call is tried twice instead of ten times (each attempt waits at most the pool timeout,
POSTGRES_CONNECT_TIMEOUT), and a pool that lost its server retries connecting every few
seconds instead of backing off for minutes, so the store serves again soon after the
database is back. Select it with PERSISTENCE_MODULE=application.availability:FailFastPostgresFactory.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import psycopg
import sqlalchemy.exc
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.utils import EnvType

from application.postgres_log import OneTripApplicationRecorder

# SQLSTATE (or class prefix) of a PostgreSQL error that says "the store cannot serve now".
UNAVAILABLE_SQLSTATES = {
    "08": "unreachable",  # connection exception
    "53": "out of resources",  # too many connections, disk full, out of memory
    "57P": "unreachable",  # shutting down, restarting, cannot connect now
    "25006": "read-only",  # read-only SQL transaction (a standby, or a role made read-only)
    "42501": "permission denied",
    "55P03": "timeout",  # lock not available (lock_timeout)
    "57014": "timeout",  # statement cancelled (statement_timeout)
}
SQLITE_UNAVAILABLE = {"database is locked": "locked", "readonly": "read-only"}
# Seconds a pool that lost its server keeps backing off before it starts again from a
# quick retry (psycopg_pool doubles the delay up to its reconnect_timeout, 5 min by default).
RECONNECT_WINDOW_S = 4.0


def unavailable_reason(error: BaseException) -> str | None:
    """Why `error` means "the store cannot serve now" (unreachable, read-only, permission
    denied, timeout, locked…), or None when it is anything else (a bug, a conflict).

    Walks the chain of causes: eventsourcing and SQLAlchemy wrap the driver's error.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str):
            for prefix, reason in sorted(UNAVAILABLE_SQLSTATES.items(), key=lambda i: -len(i[0])):
                if sqlstate.startswith(prefix):
                    return reason
        if isinstance(current, sqlite3.OperationalError):
            text = str(current).lower()
            for needle, reason in SQLITE_UNAVAILABLE.items():
                if needle in text:
                    return reason
        if isinstance(current, sqlalchemy.exc.TimeoutError):
            return "timeout"  # no pooled connection came free in time
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError keeps the driver's
        current = orig if isinstance(orig, BaseException) else current.__cause__
    if isinstance(
        error,
        OperationalError
        | InterfaceError
        | psycopg.OperationalError
        | psycopg.InterfaceError
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError,
    ):
        return "unreachable"
    return None


F = TypeVar("F", bound=Callable[..., Any])


def twice(method: F) -> F:
    """Two attempts of a recorder call — a method, or a function given the recorder
    first (eventsourcing tries 10 times, each waiting up to the
    pool timeout: two keep a client's wait bounded). Connections are not pinged each time
    they leave the pool (a round trip per statement); instead, when an attempt fails, every
    idle connection is checked before the second: a restarted or swept server leaves dead
    ones behind, and the second attempt must not take another."""

    @functools.wraps(method)
    def attempts(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (InterfaceError, OperationalError):
            time.sleep(0.1)
            self.datastore.pool.check()
            return method(self, *args, **kwargs)

    return cast(F, attempts)


class FailFastAggregateRecorder(PostgresAggregateRecorder):
    """The snapshots' recorder, two attempts per call."""

    insert_events = twice(PostgresAggregateRecorder.insert_events.__wrapped__)
    select_events = twice(PostgresAggregateRecorder.select_events.__wrapped__)


class FailFastApplicationRecorder(OneTripApplicationRecorder):
    """The event log's recorder, two attempts per call."""

    insert_events = twice(OneTripApplicationRecorder.insert_events)
    select_events = twice(PostgresApplicationRecorder.select_events.__wrapped__)
    select_notifications = twice(PostgresApplicationRecorder.select_notifications.__wrapped__)
    max_notification_id = twice(PostgresApplicationRecorder.max_notification_id.__wrapped__)
    select_events_after = twice(OneTripApplicationRecorder.select_events_after)
    select_newest = twice(OneTripApplicationRecorder.select_newest)


class FailFastPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL persistence, failing fast and reconnecting promptly."""

    aggregate_recorder_class = FailFastAggregateRecorder
    application_recorder_class = FailFastApplicationRecorder

    def __init__(self, env: EnvType | None) -> None:
        super().__init__(env)
        self.datastore.pool.reconnect_timeout = RECONNECT_WINDOW_S
