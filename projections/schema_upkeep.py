"""The projector's read-model tables: set up, rebuilt when their definition changed, reset,
and their secondary indexes deferred during a replay (a part of `Projector`,
projections/runner.py, kept apart for its size)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.projection import Projection
from projections.tracking import built_as, tracking


class SchemaUpkeep:
    """The read models' tables, for a projector (which provides what is declared here)."""

    projections: dict[str, Projection]
    _is_postgres: bool
    _seen: dict[str, int]

    def _begin(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _lock(self, conn: Connection, name: str, *, wait: bool) -> int | None:
        raise NotImplementedError

    def setup(self) -> list[str]:
        """Creates the tracking tables, every projection's tables and tracking rows; rebuilds
        (from position 0) each read model built by an older definition. Returns those names."""
        with self._begin() as conn:
            tracking.create(conn, checkfirst=True)
            built_as.create(conn, checkfirst=True)
            for projection in self.projections.values():
                exists = conn.execute(
                    sa.select(tracking.c.name).where(tracking.c.name == projection.name)
                ).first()
                if exists is None:
                    conn.execute(tracking.insert().values(name=projection.name, position=0))
        return [name for name in self.projections if self._rebuild_if_changed(name)]

    def _rebuild_if_changed(self, name: str) -> bool:
        projection = self.projections[name]
        with self._begin() as conn:
            position = self._lock(conn, name, wait=True)  # one process decides, others wait
            wanted = projection.fingerprint(conn)
            built = conn.execute(
                sa.select(built_as.c.fingerprint).where(built_as.c.name == name)
            ).scalar()
            inspector = sa.inspect(conn)
            complete = all(inspector.has_table(t.name) for t in projection.tables)
            if built == wanted and complete:
                projection.create(conn)  # idempotent (the search tables, the indexes)
                return False
            projection.drop(conn)
            projection.create(conn)
            conn.execute(tracking.update().where(tracking.c.name == name).values(position=0))
            conn.execute(built_as.delete().where(built_as.c.name == name))
            conn.execute(built_as.insert().values(name=name, fingerprint=wanted))
        self._seen.pop(name, None)
        return bool(position)  # a read model with rows, now rebuilt from the log

    def reset(self, name: str) -> None:
        """Drops and recreates one projection's tables and sets its position to 0."""
        projection = self.projections[name]
        with self._begin() as conn:
            self._lock(conn, name, wait=True)
            projection.drop(conn)
            projection.create(conn)
            conn.execute(tracking.update().where(tracking.c.name == name).values(position=0))
        self._seen.pop(name, None)

    def defer_indexes(self, name: str) -> list[str]:
        """Before a rebuild from position 0 on PostgreSQL: drops the read model's secondary
        indexes (those enforcing nothing: no primary key, no unique one) and returns the
        statements that create them again (`build_indexes`). Building an index once over
        all the rows costs the server far less than updating it row by row. The model's
        fingerprint is forgotten meanwhile, so one whose rebuild dies (without its indexes)
        is rebuilt from the log, indexes and all, by the next `setup`."""
        if not self._is_postgres:
            return []
        tables = [t.name for t in self.projections[name].tables]
        with self._begin() as conn:
            self._lock(conn, name, wait=True)
            found = conn.execute(
                sa.text(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i"
                    " JOIN pg_class c ON c.relname = i.indexname"
                    " AND c.relnamespace = to_regnamespace(i.schemaname)"
                    " JOIN pg_index x ON x.indexrelid = c.oid"
                    " WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables)"
                    " AND NOT x.indisunique AND NOT x.indisprimary ORDER BY i.indexname"
                ),
                {"tables": tables},
            ).all()
            conn.execute(built_as.delete().where(built_as.c.name == name))
            for index, _ in found:
                conn.exec_driver_sql(f'DROP INDEX "{index}"')
        return [definition for _, definition in found]

    def build_indexes(self, name: str, statements: Sequence[str]) -> None:
        """Creates the indexes `defer_indexes` dropped and remembers the model as built."""
        if not self._is_postgres:
            return
        projection = self.projections[name]
        with self._begin() as conn:
            self._lock(conn, name, wait=True)
            for statement in statements:
                conn.exec_driver_sql(statement)
            wanted = projection.fingerprint(conn)
            conn.execute(built_as.delete().where(built_as.c.name == name))
            conn.execute(built_as.insert().values(name=name, fingerprint=wanted))
