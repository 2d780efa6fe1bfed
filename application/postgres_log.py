"""eventsourcing's PostgreSQL event log, with fewer round trips per command.

Round trips, not work, are what a command waits for on a busy machine (each one wakes the
server and then the client). `PostgresApplicationRecorder.insert_events` takes FIVE for one
append: psycopg syncs after BEGIN, after the INSERT, on leaving its nested pipeline, after
COMMIT and on leaving the outer one. `insert_events` here sends the same statements — BEGIN,
the lock timeout, LOCK TABLE … IN EXCLUSIVE MODE, NOTIFY, the INSERT … RETURNING, COMMIT —
as ONE simple query (the rows bound client-side by psycopg's ClientCursor, as VALUES instead
of an unnest of composites; cheaper for the client than six pipelined statements): one
round trip, the same transaction, the same table lock (insert order = commit order, so
positions stay gapless for readers), the same durability (COMMIT answers once the WAL is
flushed). A refused INSERT (another writer took the version: IntegrityError) skips the
COMMIT; the transaction is rolled back before the connection goes back to the pool.

`select_events_after` reads several aggregates' newest events in one statement
(application/aggregate_cache.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import ClientCursor
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier


class OneTripApplicationRecorder(PostgresApplicationRecorder):
    """The event log's recorder: an append in one round trip, batched reads."""

    _statements: tuple[bytes, bytes, bytes] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._after_statements: dict[int, Composed] = {}

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events or self.datastore.enable_db_functions:
            # Nothing to append, or the database function: as eventsourcing writes it.
            return PostgresApplicationRecorder.insert_events.__wrapped__(  # type: ignore[no-any-return]
                self, stored_events, **kwargs
            )
        begin, insert, commit = self._rendered()
        statement = b"".join(
            [begin, b",".join([b"(%s, %s, %s, %s)"] * len(stored_events)), insert, commit]
        )
        params = [
            v
            for e in stored_events
            for v in (e.originator_id, e.originator_version, e.topic, e.state)
        ]
        with self.datastore.get_connection() as conn, ClientCursor(conn) as curs:
            assert conn.autocommit
            try:
                curs.execute(statement, params)  # one Query message, one answer
                while curs.description is None and curs.nextset():
                    pass  # BEGIN, SET LOCAL, LOCK TABLE, NOTIFY: then the INSERT's rows
                return [row["notification_id"] for row in curs.fetchall()]
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                raise

    def _rendered(self) -> tuple[bytes, bytes, bytes]:
        """eventsourcing's statements of an append around the rows' VALUES, as bytes."""
        if self._statements is None:
            with self.datastore.get_connection() as conn:
                lock = b"; ".join(s.as_bytes(conn) for s in self.lock_table_statements)  # type: ignore[union-attr]
                notify = SQL("NOTIFY {0}").format(Identifier(self.channel_name)).as_bytes(conn)
                table = SQL("{0}.{1}").format(
                    Identifier(self.datastore.schema), Identifier(self.events_table_name)
                )
                into = SQL(
                    "INSERT INTO {0} (originator_id, originator_version, topic, state) VALUES "
                ).format(table)
                self._statements = (
                    b"BEGIN; " + lock + b"; " + notify + b"; " + into.as_bytes(conn),
                    b" RETURNING notification_id",
                    b"; COMMIT",
                )
        return self._statements

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """The stored events of several aggregates, each after a version, in ONE round trip:
        one indexed range scan per aggregate, in no particular order."""
        if not after:
            return []
        statement = self._after_statements.get(len(after))
        if statement is None:
            one = SQL(
                "SELECT originator_id, originator_version, topic, state FROM {0}.{1} "
                "WHERE originator_id = %s AND originator_version > %s"
            ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
            statement = self._after_statements[len(after)] = SQL(" UNION ALL ").join(
                [one] * len(after)
            )
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            curs.execute(statement, [p for pair in after for p in pair], prepare=True)
            return [
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
                for originator_id, version, topic, state in curs.fetchall()
            ]
