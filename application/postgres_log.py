"""eventsourcing's PostgreSQL event log, with fewer round trips and less planning per command.

Round trips, not work, are what a command waits for on a busy machine (each one wakes the
server and then the client). `PostgresApplicationRecorder.insert_events` takes FIVE for one
append (psycopg syncs after BEGIN, after the INSERT, on leaving its nested pipeline, after
COMMIT and on leaving the outer one). `insert_events` here sends the same statements —
BEGIN, the lock timeout, LOCK TABLE … IN EXCLUSIVE MODE, NOTIFY, the INSERT … RETURNING,
COMMIT — as ONE simple query on the connection's libpq handle (psycopg's ClientCursor spent
more client time adapting parameters than the server spent on the append): one round trip,
the same transaction, the same table lock (insert order = commit order, so positions stay
gapless for readers), the same durability (COMMIT answers once the WAL is flushed). The
INSERT is an EXECUTE of a statement prepared once per connection for its shape (number of
rows and of probes), its values written in as literals — uuid, integer, a kept topic
literal, the state as hex bytea —: the server no longer plans it at every append. A
refused INSERT (another writer took the version: IntegrityError) skips the COMMIT; the
transaction is rolled back before the connection goes back to the pool. Given the
versions of the copies an attempt trusted (`unchanged`), the INSERT appends only if none of
those aggregates has a newer event (application/attempts.py).

Given `facts` (application/access_facts.py), the same query also writes the rows a token
check reads, under the same condition as the events (both go in or neither: a refused
INSERT aborts the transaction); `access_facts_statement` reads a token's three.

`select_events_after` reads several aggregates' newest events in one statement, and
`select_newest` with them the newest snapshot and what follows of snapshotted ones the
process does not know yet (application/aggregate_cache.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from application.access_facts import FactRow
from application.attempts import StaleReads
from application.pooled import pooled
from application.prepared import Prepared, Values, simple_query

_EVENT_TYPES = (b"uuid", b"bigint", b"text", b"bytea")
_FACT_TYPES = (b"uuid", b"bigint", b"uuid", b"uuid", b"bytea")


class OneTripApplicationRecorder(PostgresApplicationRecorder):
    """The event log's recorder: an append in one round trip, batched reads."""

    _statements: tuple[bytes, bytes, bytes, bytes] | None = None
    _table = b""
    _facts_table = b""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._after_statements: dict[tuple[int, int, str], bytes] = {}
        self._prepared = Prepared()
        self._topics: dict[str, bytes] = {}
        self.facts_table_name = self.events_table_name.removesuffix("_events") + "_access_facts"
        self.check_identifier_length(self.facts_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (id uuid PRIMARY KEY, version bigint NOT NULL,"
                " installation_id uuid, grant_id uuid, facts bytea NOT NULL)"
            ).format(Identifier(self.datastore.schema), Identifier(self.facts_table_name))
        )

    @property
    def keeps_facts(self) -> bool:
        """Whether appends write the rows token checks read (application/access_facts.py)."""
        return not self.datastore.enable_db_functions

    @functools.cached_property
    def access_facts_statement(self) -> str:
        """A token's installation and grant ids and the three rows' facts as one JSON array
        (token, installation, grant), each row only if it describes its aggregate's latest
        version (no event after it); no row otherwise."""
        facts, events = self._quoted(self.facts_table_name), self._quoted(self.events_table_name)

        def latest(row: str) -> str:
            return (
                f"NOT EXISTS (SELECT FROM {events} e WHERE e.originator_id = {row}.id"
                f" AND e.originator_version > {row}.version)"
            )

        return (
            "SELECT t.installation_id, t.grant_id, convert_from('['::bytea || t.facts"
            " || ','::bytea || i.facts || ','::bytea || g.facts || ']'::bytea, 'UTF8')"
            f" FROM {facts} t"
            f" JOIN {facts} i ON i.id = t.installation_id AND {latest('i')}"
            f" JOIN {facts} g ON g.id = t.grant_id AND {latest('g')}"
            f" WHERE t.id = %s AND {latest('t')}"
        )

    def _quoted(self, table: str) -> str:
        """A table of this recorder's schema, as an SQL identifier."""
        schema = self.datastore.schema.replace('"', '""')
        return f'"{schema}"."{table}"'

    @property
    def confirms_reads(self) -> bool:
        """Whether appends can confirm the versions an attempt trusted (attempts.py)."""
        return not self.datastore.enable_db_functions

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        unchanged: dict[UUID, int] | None = None,
        facts: Sequence[FactRow] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """Appends in one round trip; with `unchanged` ({aggregate id: version}), only if
        none of those aggregates has an event after that version (else StaleReads); with
        `facts`, writes those rows too if the events went in (newer versions only)."""
        if not stored_events or self.datastore.enable_db_functions:
            # Nothing to append, or the database function: as eventsourcing writes it.
            assert not (stored_events and unchanged)
            return PostgresApplicationRecorder.insert_events.__wrapped__(  # type: ignore[no-any-return]
                self, stored_events, **kwargs
            )
        begin, _, _, commit = self._rendered()
        rows = [
            (
                _uuid_literal(e.originator_id),
                b"%d" % e.originator_version,
                self._topic_literal(e.topic),
                _bytea_literal(e.state),
            )
            for e in stored_events
        ]
        # Under the table lock taken just before (every append takes it), the statement's
        # snapshot holds every event committed: none can come in between the probes and the
        # insert. One primary-key probe per aggregate, each evaluated once (an InitPlan).
        probes = [(_uuid_literal(i), b"%d" % v) for i, v in (unchanged or {}).items()]
        parts = [self._prepared.part(b"events", _EVENT_TYPES, self._events_sql, rows, probes)]
        if facts:  # the same condition: both go in, or neither
            fact_rows = _fact_literals(facts)
            parts.append(
                self._prepared.part(b"facts", _FACT_TYPES, self._facts_sql, fact_rows, probes)
            )
        statement = b"".join([begin, b"; ".join(p.run for p in parts), commit])
        with pooled(self.datastore) as conn:
            assert conn.autocommit
            try:
                ids = self._prepared.run(conn, statement, parts)
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                raise
        if len(ids) != len(stored_events):
            # Nothing inserted (an empty transaction committed): a copy was stale.
            raise StaleReads("an aggregate read has changed since")
        return ids

    def without_current_facts(self, topics: Sequence[str], ids: Sequence[UUID] = ()) -> list[UUID]:
        """The aggregates created by an event of one of `topics` (or among `ids`) whose
        token-check facts row is missing or behind their latest version."""
        facts, events = self._quoted(self.facts_table_name), self._quoted(self.events_table_name)
        which = "e.topic = ANY(%s)" if topics else "e.originator_id = ANY(%s)"
        sql = (
            f"SELECT e.originator_id FROM {events} e WHERE e.originator_version = 1 AND {which}"
            f" AND NOT EXISTS (SELECT FROM {facts} f WHERE f.id = e.originator_id"
            f" AND NOT EXISTS (SELECT FROM {events} n WHERE n.originator_id = f.id"
            " AND n.originator_version > f.version)) ORDER BY e.originator_id"
        )
        with pooled(self.datastore) as conn, conn.cursor(row_factory=tuple_row) as curs:
            return [r[0] for r in curs.execute(sql, [list(topics) if topics else list(ids)])]

    def referenced_by_token_facts(self) -> tuple[list[UUID], list[UUID]]:
        """The installations and the grants the kept token rows name."""
        facts = self._quoted(self.facts_table_name)
        found: list[list[UUID]] = []
        with pooled(self.datastore) as conn, conn.cursor(row_factory=tuple_row) as curs:
            for column in ("installation_id", "grant_id"):
                sql = f"SELECT DISTINCT {column} FROM {facts} WHERE {column} IS NOT NULL"
                found.append([r[0] for r in curs.execute(sql)])
        return found[0], found[1]

    def write_facts(self, facts: Sequence[FactRow]) -> None:
        """Writes rows outside an append (newer versions only): one an append writes later
        wins, and a row behind its aggregate is never believed."""
        with pooled(self.datastore) as conn:
            simple_query(conn, self._facts_sql(_fact_literals(facts), []))

    def _condition(self, probes: Values) -> bytes:
        """No event of a probed aggregate (id, version) after that version."""
        if not probes:
            return b""
        table = self._table_bytes()
        return b" WHERE " + b" AND ".join(
            [
                b"NOT EXISTS (SELECT FROM %s WHERE originator_id = %s AND originator_version > %s)"
                % (table, i, v)
                for i, v in probes
            ]
        )

    def _events_sql(self, rows: Values, probes: Values) -> bytes:
        """The INSERT of events (each row: id, version, topic, state), if the probes hold."""
        _, into, returning, _ = self._rendered()
        values = b",".join([b"(%s)" % b",".join(row) for row in rows])
        if probes:
            values = b"SELECT * FROM (VALUES %s) AS v%s" % (values, self._condition(probes))
        else:
            values = b"VALUES " + values
        return into + values + returning

    def _facts_sql(self, rows: Values, probes: Values) -> bytes:
        """The rows as an upsert (newer versions only), written only if the probes hold."""
        values = b",".join([b"(%s)" % b",".join(row) for row in rows])
        return (
            b"INSERT INTO %s AS f (id, version, installation_id, grant_id, facts)"
            b" SELECT * FROM (VALUES %s) AS v%s"
            b" ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version,"
            b" installation_id = EXCLUDED.installation_id, grant_id = EXCLUDED.grant_id,"
            b" facts = EXCLUDED.facts WHERE f.version < EXCLUDED.version"
        ) % (self._facts_table, values, self._condition(probes))

    def _topic_literal(self, topic: str) -> bytes:
        """A topic as an SQL string literal (there are few topics: kept)."""
        literal = self._topics.get(topic)
        if literal is None:
            quoted = topic.replace("'", "''")
            literal = self._topics[topic] = f"'{quoted}'".encode()
        return literal

    def _rendered(self) -> tuple[bytes, bytes, bytes, bytes]:
        """eventsourcing's statements of an append around the rows' VALUES, as bytes."""
        if self._statements is None:
            with self.datastore.get_connection() as conn:
                lock = b"; ".join(s.as_bytes(conn) for s in self.lock_table_statements)  # type: ignore[union-attr]
                notify = SQL("NOTIFY {0}").format(Identifier(self.channel_name)).as_bytes(conn)
                table = SQL("{0}.{1}").format(
                    Identifier(self.datastore.schema), Identifier(self.events_table_name)
                )
                into = SQL(
                    "INSERT INTO {0} (originator_id, originator_version, topic, state) "
                ).format(table)
                self._table = table.as_bytes(conn)
                self._facts_table = (
                    SQL("{0}.{1}")
                    .format(Identifier(self.datastore.schema), Identifier(self.facts_table_name))
                    .as_bytes(conn)
                )
                self._statements = (
                    b"BEGIN; " + lock + b"; " + notify + b"; ",
                    into.as_bytes(conn),
                    b" RETURNING notification_id",
                    b"; COMMIT",
                )
        return self._statements

    def _table_bytes(self) -> bytes:
        self._rendered()
        return self._table

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """The stored events of several aggregates, each after a version, in ONE round trip:
        one indexed range scan per aggregate, in no particular order."""
        return self._select_newest(after)[0]

    def select_newest(
        self,
        after: Sequence[tuple[UUID, int]],
        snapshotted: Sequence[UUID] = (),
        snapshots_table: str = "",
    ) -> tuple[list[StoredEvent], list[StoredEvent]]:
        """(events, snapshots) in ONE round trip: the events of each `after` aggregate past
        its version; for each `snapshotted` one, its newest snapshot in `snapshots_table`
        (if any) and its events past that snapshot — what eventsourcing's repository reads
        in two round trips (the snapshot, then the events)."""
        return self._select_newest(after, snapshotted, snapshots_table)

    def _select_newest(
        self,
        after: Sequence[tuple[UUID, int]],
        snapshotted: Sequence[UUID] = (),
        snapshots_table: str = "",
    ) -> tuple[list[StoredEvent], list[StoredEvent]]:
        # The body both reads above share, unwrapped: application/availability.py retries
        # each public read, and one calling the other would retry twice over.
        if not after and not snapshotted:
            return [], []
        key = (len(after), len(snapshotted), snapshots_table)  # the statement's shape
        params = [p for pair in after for p in pair] + [i for i in snapshotted for _ in range(3)]
        with (
            pooled(self.datastore) as conn,
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            statement = self._after_statements.get(key)
            if statement is None:  # composed once (psycopg would compose it on each call)
                composed = self._newest_statement(*key)
                statement = self._after_statements[key] = composed.as_bytes(conn)
            curs.execute(statement, params, prepare=True)
            rows = curs.fetchall()
        found: tuple[list[StoredEvent], list[StoredEvent]] = ([], [])
        for snapshot, originator_id, version, topic, state in rows:
            found[1 if snapshot else 0].append(
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
            )
        return found

    def _newest_statement(self, after: int, snapshotted: int, snapshots_table: str) -> Composed:
        events = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        columns = SQL("originator_id, originator_version, topic, state")
        one = SQL(
            "SELECT false, {0} FROM {1} WHERE originator_id = %s AND originator_version > %s"
        ).format(columns, events)
        parts = [one] * after
        if snapshotted:
            snapshots = SQL("{0}.{1}").format(
                Identifier(self.datastore.schema), Identifier(snapshots_table)
            )
            newest = SQL(
                "(SELECT true, {0} FROM {1} WHERE originator_id = %s"
                " ORDER BY originator_version DESC LIMIT 1)"
            ).format(columns, snapshots)
            since = SQL(
                "SELECT false, {0} FROM {1} WHERE originator_id = %s AND originator_version >"
                " COALESCE((SELECT max(originator_version) FROM {2} WHERE originator_id = %s), 0)"
            ).format(columns, events, snapshots)
            parts += [newest, since] * snapshotted
        return SQL(" UNION ALL ").join(parts)


def _fact_literals(facts: Sequence[FactRow]) -> list[tuple[bytes, ...]]:
    """Each row's values as SQL literals."""
    return [
        (
            _uuid_literal(row.id),
            b"%d::bigint" % row.version,
            _uuid_literal(row.installation_id),
            _uuid_literal(row.grant_id),
            _bytea_literal(row.facts),
        )
        for row in facts
    ]


def _uuid_literal(value: UUID | str | None) -> bytes:
    """A uuid (or NULL) as a typed SQL literal."""
    return b"'%s'::uuid" % str(value).encode() if value is not None else b"NULL::uuid"


def _bytea_literal(value: bytes) -> bytes:
    """Bytes as a typed SQL literal (hex)."""
    return b"E'\\\\x%s'::bytea" % value.hex().encode()
