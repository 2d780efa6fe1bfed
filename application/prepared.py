"""Statements prepared once per connection, for the event log's appends.

PostgreSQL plans every statement it is sent as text; an install's INSERT of three events
under a probe took about a third of its server time to plan. A statement prepared for its
shape (`PREPARE name (types) AS …`, then `EXECUTE name (values)`) is planned once per
connection. The EXECUTE still goes in the append's one simple query, its values written in
as literals, so an append stays one round trip.

`Prepared.part` gives a statement's PREPARE (None for an append larger than any command's,
which would be prepared for one use: written out whole instead) and what the append runs;
`Prepared.run` prepares on a connection what it lacks, then runs the append. psycopg
deallocates ALL of a connection's prepared statements after a rollback if it prepared
some of its own: an append that finds its statement gone prepares it again and retries
(the failed EXECUTE aborted the transaction: nothing was written).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import generators
from psycopg.pq import ExecStatus

# What `sql(rows, probes)` is given: SQL expressions, a tuple per row and per probe.
Values = Sequence[Sequence[bytes]]
PROBE_TYPES = (b"uuid", b"bigint")  # a probe: an aggregate id, a version
_SESSIONS = 256  # sessions whose prepared names are kept (more: forgotten, read again)
_OURS = b"SELECT name FROM pg_prepared_statements WHERE name LIKE 'appstore\\_%'"


class Part(NamedTuple):
    """A statement of an append: its prepared name and PREPARE (None and b"": written out
    whole), and what the append runs."""

    name: bytes | None
    prepare: bytes
    run: bytes


class Prepared:
    """Prepared statements by shape, and the names prepared on each pooled connection."""

    def __init__(self, max_rows: int = 8, max_probes: int = 8) -> None:
        self.max_rows = max_rows
        self.max_probes = max_probes
        self._prepares: dict[bytes, bytes] = {}  # PREPARE statements, by name
        # What each session has, by its server process id (a weak reference to the
        # connection per look-up cost an append 3 % of its client time).
        self._on: dict[int, set[bytes]] = {}
        self._lock = threading.Lock()

    def part(
        self,
        kind: bytes,
        types: tuple[bytes, ...],
        sql: Callable[[Values, Values], bytes],
        rows: Values,
        probes: Values,
    ) -> Part:
        """The statement `sql(rows, probes)` (rows of `types`, probes of PROBE_TYPES) as an
        EXECUTE of the statement prepared for its shape, or written out whole if large."""
        if len(rows) > self.max_rows or len(probes) > self.max_probes:
            return Part(None, b"", sql(rows, probes))
        name = b"appstore_%s_%d_%d" % (kind, len(rows), len(probes))
        prepare = self._prepares.get(name)
        if prepare is None:
            numbers = iter(range(1, 1 + len(types) * len(rows) + len(PROBE_TYPES) * len(probes)))
            template = sql(
                [[b"$%d" % next(numbers) for _ in types] for _ in rows],
                [[b"$%d" % next(numbers) for _ in PROBE_TYPES] for _ in probes],
            )
            signature = b",".join([*types * len(rows), *PROBE_TYPES * len(probes)])
            prepare = b"PREPARE %s (%s) AS %s" % (name, signature, template)
            self._prepares[name] = prepare
        arguments = b",".join([x for row in [*rows, *probes] for x in row])
        return Part(name, prepare, b"EXECUTE %s (%s)" % (name, arguments))

    def run(
        self,
        conn: psycopg.Connection[Any],
        statement: bytes,
        parts: Sequence[Part],
        *,
        again: bool = True,
    ) -> list[int]:
        """Prepares on `conn` the parts it lacks, then runs `statement` (a simple query);
        answers the positions its INSERT … RETURNING gave. A statement found gone (even
        beside one just prepared) has the session's names read again, and the append
        tried once more."""
        names = self._on.get(conn.pgconn.backend_pid)
        if names is None:
            names = self._session(conn)
        missing = {p.name: p.prepare for p in parts if p.name is not None and p.name not in names}
        if missing:
            simple_query(conn, b"; ".join(missing.values()))
            names.update(missing)
        try:
            return [int(position) for position in simple_query(conn, statement)]
        except psycopg.errors.InvalidSqlStatementName:
            if not again:  # read from the server a moment ago: not a stale name
                raise
            conn.rollback()  # (nothing was written: the EXECUTE failed)
            self._on.pop(conn.pgconn.backend_pid, None)
            return self.run(conn, statement, parts, again=False)

    def _session(self, conn: psycopg.Connection[Any]) -> set[bytes]:
        """The names prepared in a session not met yet (a new one has none; a server
        process id given again belongs to a new session)."""
        names = set(simple_query(conn, _OURS))
        with self._lock:
            if len(self._on) >= _SESSIONS:  # sessions come and go with the pool
                self._on.clear()
            self._on[conn.pgconn.backend_pid] = names
        return names


def simple_query(conn: psycopg.Connection[Any], statement: bytes) -> list[bytes]:
    """Sends a simple query (its values written in: one Query message, one answer) and
    answers the first column of the last rows it returned; raises the server's error."""
    with conn.lock:
        conn.pgconn.send_query(statement)
        results = conn.wait(generators.execute(conn.pgconn))
    found: list[bytes] = []
    for result in results:
        if result.status == ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
        if result.status == ExecStatus.TUPLES_OK:
            found = [result.get_value(row, 0) or b"" for row in range(result.ntuples)]
    return found
