"""Reads of the event log the eventsourcing recorders do not offer, on both backends:
which aggregates have changed since a version (`Store.changed`), and one aggregate's stored
events with their global positions (`Store.stored_events`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Notification,
    OperationalError,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row

from application.availability import twice
from application.probes import Probes


@dataclass(frozen=True)
class StoredEvent:
    """One stored event of an aggregate, undecoded, with its place in the global log."""

    position: int
    aggregate_id: UUID
    version: int
    topic: str
    state: bytes


def changed(
    recorder: ApplicationRecorder, probes: Probes | None, versions: dict[UUID, int]
) -> set[UUID]:
    """Which of these aggregates have an event after the given version, in one read (on
    PostgreSQL through a kept connection of `probes` when one answers)."""
    if not versions:
        return set()
    table = recorder.events_table_name  # type: ignore[attr-defined]
    newer = (
        f"EXISTS (SELECT 1 FROM {table} e WHERE e.originator_id = k.id"
        " AND e.originator_version > k.v)"
    )
    if isinstance(recorder, PostgresApplicationRecorder):
        sql = f"SELECT k.id FROM unnest(%s::uuid[], %s::bigint[]) AS k(id, v) WHERE {newer}"
        params: list[Any] = [list(versions), list(versions.values())]
        rows = probes.rows(sql, params) if probes is not None else None
        if rows is not None:  # one round trip on a kept connection
            return {UUID(str(row[0])) for row in rows}
        found: set[UUID] = _probe_postgres(recorder, sql, params)
        return found
    if isinstance(recorder, SQLiteApplicationRecorder):
        found = set()
        pairs = list(versions.items())
        with recorder.datastore.transaction(commit=False) as curs:
            for start in range(0, len(pairs), 400):  # within SQLite's variable limit
                chunk = pairs[start : start + 400]
                values = ",".join("(?, ?)" for _ in chunk)
                curs.execute(
                    f"WITH k(id, v) AS (VALUES {values}) SELECT k.id FROM k WHERE {newer}",
                    [x for id_, v in chunk for x in (id_.hex, v)],
                )
                found.update(UUID(r[0]) for r in curs.fetchall())
        return found
    raise TypeError(f"unsupported recorder {type(recorder).__name__}")  # pragma: no cover


def access_facts(
    recorder: ApplicationRecorder, probes: Probes | None, token_id: UUID
) -> tuple[UUID, UUID, str] | None:
    """A token's installation and grant, and the facts of all three as a JSON array, each
    describing its aggregate's latest version, in one read; None when there is no such row (or the
    recorder keeps none: SQLite)."""
    if not getattr(recorder, "keeps_facts", False):
        return None
    sql: str = recorder.access_facts_statement  # type: ignore[attr-defined]
    rows = probes.rows(sql, [token_id]) if probes is not None else None
    if rows is None:  # no kept connection answered: through the pool
        assert isinstance(recorder, PostgresApplicationRecorder)
        rows = _read_postgres(recorder, sql, [token_id])
    if not rows:
        return None
    installation_id, grant_id, facts = rows[0]
    return installation_id, grant_id, facts


def notifications(
    recorder: ApplicationRecorder, start: int, limit: int, *, inclusive: bool = True
) -> list[Notification]:
    """At most `limit` stored events from position `start` (or after it): what the
    recorder's `select_notifications` gives. On PostgreSQL read as plain tuples by a
    statement built once (the recorder's composes its statement per call and builds a
    dict per row: a twentieth of a replay's client time), tried twice as the recorder's
    own reads are (application/availability.py)."""
    if not isinstance(recorder, PostgresApplicationRecorder):
        return list(
            recorder.select_notifications(start=start, limit=limit, inclusive_of_start=inclusive)
        )
    return _page(recorder, _page_statement(recorder, inclusive), start, limit)


_PAGE_STATEMENTS: dict[tuple[str, str, bool], bytes] = {}


def _page_statement(recorder: PostgresApplicationRecorder, inclusive: bool) -> bytes:
    key = (recorder.datastore.schema, recorder.events_table_name, inclusive)
    found = _PAGE_STATEMENTS.get(key)
    if found is None:
        table = f'"{key[0]}"."{key[1]}"'
        found = _PAGE_STATEMENTS[key] = (
            "SELECT notification_id, originator_id, originator_version, topic, state"
            f" FROM {table} WHERE notification_id {'>=' if inclusive else '>'} %s"
            " ORDER BY notification_id LIMIT %s"
        ).encode()
    return found


@twice
def _page(
    recorder: PostgresApplicationRecorder, statement: bytes, start: int, limit: int
) -> list[Notification]:
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
        curs.execute(statement, (start, limit), prepare=True)
        return [
            Notification(
                id=position,
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
            for position, originator_id, version, topic, state in curs.fetchall()
        ]


def stored_events(recorder: ApplicationRecorder, aggregate_id: UUID) -> list[StoredEvent]:
    """Every stored event of one aggregate in version order, with global positions."""
    table = recorder.events_table_name  # type: ignore[attr-defined]
    if isinstance(recorder, PostgresApplicationRecorder):
        sql = (
            f"SELECT notification_id, originator_version, topic, state "
            f"FROM {table} WHERE originator_id = %s ORDER BY originator_version"
        )
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql, [aggregate_id])
            rows = [
                (r["notification_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                for r in curs.fetchall()
            ]
    elif isinstance(recorder, SQLiteApplicationRecorder):
        sql = (
            f"SELECT rowid, originator_version, topic, state "
            f"FROM {table} WHERE originator_id = ? ORDER BY originator_version"
        )
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(sql, [aggregate_id.hex])
            rows = [
                (r["rowid"], r["originator_version"], r["topic"], r["state"])
                for r in curs.fetchall()
            ]
    else:  # pragma: no cover - only the two backends are supported
        raise TypeError(f"unsupported recorder {type(recorder).__name__}")
    return [StoredEvent(p, aggregate_id, v, t, s) for p, v, t, s in rows]


@retry((InterfaceError, OperationalError), max_attempts=2, wait=0.1)  # as the recorder's
def _probe_postgres(
    recorder: PostgresApplicationRecorder, sql: str, params: list[Any]
) -> set[UUID]:
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(sql, params, prepare=True)  # autocommit: one round trip
        return {UUID(str(r["id"])) for r in curs.fetchall()}


@retry((InterfaceError, OperationalError), max_attempts=2, wait=0.1)  # as the recorder's
def _read_postgres(
    recorder: PostgresApplicationRecorder, sql: str, params: list[Any]
) -> list[tuple[Any, ...]]:
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
        curs.execute(sql, params, prepare=True)  # autocommit: one round trip
        return curs.fetchall()
