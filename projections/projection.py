"""A read model: the tables it owns and one typed handler per event class it reads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

from projections.batch import Batch

E = TypeVar("E")
Handler = Callable[[Batch, Any, int], None]


@dataclass(frozen=True)
class On(Generic[E]):
    """Applies events of class `event` with `handler(batch, event, position)`."""

    event: type[E]
    handler: Callable[[Batch, E, int], None]


def on(event: type[E], handler: Callable[[Batch, E, int], None]) -> On[E]:
    """A handler for one event class; the type checker holds the handler to that class."""
    return On(event, handler)


class Projection:
    """A read model: its tables and its handlers. Events of other classes only advance
    the tracking position.

    Raise `version` when what the projection computes changes without its tables
    changing: a changed version or table definition rebuilds the read model from the log.
    """

    name: str = ""
    tables: tuple[sa.Table, ...] = ()
    version: int = 1
    # What applying one event of the log costs, relative to the others (measured on the
    # bench log): a catch-up in several processes (`appstore replay`, projections/
    # process_lanes.py) splits the read models into shares of equal cost.
    replay_cost: float = 1.0

    def handlers(self) -> Sequence[On[Any]]:
        """One `on(EventClass, handler)` per event class this read model reads."""
        raise NotImplementedError

    def prepare(self, batch: Batch, events: Sequence[Any]) -> None:
        """Before a step applies `events` (those of this step it has handlers for, in log
        order): reads in bulk what the handlers will ask `batch` for (`Batch.get_many`),
        instead of a round trip per event."""

    def finish(self, batch: Batch) -> None:
        """Writes what the handlers collected in `batch.extra` (after the rows)."""

    def create(self, conn: Connection) -> None:
        """Creates the tables (idempotent)."""
        for table in self.tables:
            table.create(conn, checkfirst=True)

    def drop(self, conn: Connection) -> None:
        """Drops the tables (replay rebuilds them)."""
        for table in reversed(self.tables):
            table.drop(conn, checkfirst=True)

    def fingerprint(self, conn: Connection) -> str:
        """What the read model looks like: its version and its tables' DDL on this database."""
        ddl = [str(CreateTable(t).compile(dialect=conn.dialect)) for t in self.tables]
        ddl += [
            str(CreateIndex(i).compile(dialect=conn.dialect))
            for t in self.tables
            for i in sorted(t.indexes, key=lambda i: str(i.name))
        ]
        return hashlib.sha256("\n".join([str(self.version), *ddl]).encode()).hexdigest()[:16]
