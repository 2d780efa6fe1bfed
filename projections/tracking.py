"""The projections' tracking rows (each read model's position in the log, written in the
same transaction as its rows), what each read model was built as, and what a step reports."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

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
