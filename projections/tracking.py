"""The projections' tracking rows (each read model's position in the log, written in the
same transaction as its rows), what each read model was built as, and what a step reports."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.db import UTCDateTime, metadata

tracking = sa.Table(
    "projection_tracking",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated_at", UTCDateTime, nullable=True),
)

# What each read model looked like when it was built (see Projection.fingerprint).
built_as = sa.Table(
    "projection_schema",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)

# The tracking statements, built once with bound parameters: SQLAlchemy computes a
# statement's cache key once per object, and a projector steps every projection on
# every write.
POSITION = sa.select(tracking.c.position).where(tracking.c.name == sa.bindparam("name"))
POSITION_FOR_UPDATE = {
    wait: POSITION.with_for_update(skip_locked=not wait) for wait in (True, False)
}
POSITIONS = sa.select(tracking.c.name, tracking.c.position)
POSITIONS_OF = POSITIONS.where(tracking.c.name.in_(sa.bindparam("names", expanding=True)))
POSITIONS_OF_FOR_UPDATE = POSITIONS_OF.with_for_update(skip_locked=True)
ADVANCE = (
    tracking.update()
    .where(tracking.c.name == sa.bindparam("b_name"))
    .values(position=sa.bindparam("b_position"), updated_at=sa.func.now())
)


@dataclass(frozen=True)
class StepResult:
    projection: str
    applied: int
    position: int


@dataclass(frozen=True)
class Measured:
    """The log head and each projection's position, as the running projector last saw them."""

    head: int
    positions: dict[str, int]
    at: float  # time.monotonic()

    @property
    def lag(self) -> dict[str, int]:
        return {name: max(0, self.head - pos) for name, pos in self.positions.items()}


def _lock_and_advance(skip_locked: bool) -> bytes:
    return (
        "WITH locked AS (SELECT name, position FROM projection_tracking WHERE name = %(name)s"
        f" FOR UPDATE{' SKIP LOCKED' if skip_locked else ''}),"
        " moved AS (UPDATE projection_tracking AS t SET position = %(last)s, updated_at = now()"
        " FROM locked WHERE t.name = locked.name AND locked.position = %(expected)s"
        " RETURNING t.name)"
        " SELECT locked.position, EXISTS (SELECT FROM moved) FROM locked"
    ).encode()


# PostgreSQL (psycopg's own parameters), in one statement: lock the row (as
# POSITION_FOR_UPDATE) and, if its position is `expected`, move it to `last` (the step that
# read the page after `expected` before taking the lock then needs no ADVANCE of its own);
# returns (position, moved), or no row if it is held (SKIP LOCKED) or missing. By `wait`.
LOCK_AND_ADVANCE = {wait: _lock_and_advance(skip_locked=not wait) for wait in (True, False)}


def lock_and_advance(
    conn: Connection, name: str, wait: bool, expected: int, last: int, durable: bool = True
) -> tuple[int | None, bool]:
    """LOCK_AND_ADVANCE, sent in one trip with the BEGIN psycopg opens the transaction with
    (a pipeline), and if not `durable` the `synchronous_commit = off` of a replay's step:
    (position, moved), or (None, False) for a row held or missing."""
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor()  # type: ignore[union-attr]
    with dbapi.pipeline():  # type: ignore[union-attr]
        if not durable:
            cursor.execute(b"SET LOCAL synchronous_commit = off")
        cursor.execute(LOCK_AND_ADVANCE[wait], {"name": name, "expected": expected, "last": last})
    row = cursor.fetchone()
    return (None, False) if row is None else (int(row[0]), bool(row[1]))
