"""The rows one projection step reads and writes, written in bulk when the step ends."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from projections.copy_rows import copy_rows


class Batch:
    """The rows one projection step reads and writes, written in bulk when the step ends.

    Handlers change plain dicts; `flush` then sends one multi-row INSERT and one
    executemany UPDATE per table (instead of a round trip per event), all inside the
    step's transaction. Rows are keyed by their table's single-column primary key.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._rows: dict[str, dict[Any, dict[str, Any] | None]] = {}
        self._tables: dict[str, sa.Table] = {}
        self._existing: dict[str, set[Any]] = {}
        self._dirty: dict[str, set[Any]] = {}
        # For existing rows: which columns changed (UPDATE only those).
        self._changed: dict[str, dict[Any, set[str]]] = {}
        self._children: dict[tuple[str, str], dict[Any, list[dict[str, Any]]]] = {}
        self._child_tables: dict[tuple[str, str], sa.Table] = {}
        # Anything else a projection collects for its own `finish` (e.g. search documents).
        self.extra: dict[str, dict[Any, Any]] = {}

    @staticmethod
    def _pk(table: sa.Table) -> sa.Column[Any]:
        return _primary_key(table)

    def get(self, table: sa.Table, key: Any) -> dict[str, Any] | None:
        """The row with this primary key (from this batch, else the database), or None."""
        cache = self._rows.setdefault(table.name, {})
        if key not in cache:
            self._tables[table.name] = table
            row = self.conn.execute(_by_key(table), {"b_key": key}).first()
            cache[key] = None if row is None else dict(row._mapping)
            if row is not None:
                self._existing.setdefault(table.name, set()).add(key)
        return cache[key]

    def get_many(self, table: sa.Table, keys: Iterable[Any]) -> list[dict[str, Any]]:
        """The rows with these primary keys (those this batch has not read yet are read in
        a round trip per 1,000 keys); a key with no row is remembered as None, so later
        `get`s of any of them need no round trip."""
        cache = self._rows.setdefault(table.name, {})
        self._tables[table.name] = table
        pk = self._pk(table)
        asked = list(dict.fromkeys(keys))
        wanted = [k for k in asked if k not in cache]
        statement = _among_of(table, pk.name, self.conn.dialect.name == "postgresql")
        for i in range(0, len(wanted), 1000):
            chunk = wanted[i : i + 1000]
            cache.update(dict.fromkeys(chunk))
            for read in self.conn.execute(statement, {"b_values": chunk}):
                found = dict(read._mapping)
                cache[found[pk.name]] = found
                self._existing.setdefault(table.name, set()).add(found[pk.name])
        rows = (cache[k] for k in asked)
        return [row for row in rows if row is not None]

    def among(self, column: sa.Column[Any], values: list[Any]) -> Any:
        """`column IN values`; on PostgreSQL `= ANY(array)`: one parameter and one plan for
        any number of values (an IN list sends, converts and plans a parameter each)."""
        if self.conn.dialect.name != "postgresql":
            return column.in_(values)
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(column.type)))

    def prefetch(
        self, table: sa.Table, query: sa.Select[Any], params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Reads the rows `query` selects from `table` in one round trip (those this batch
        has not read yet), so later `get`s of them need none; returns the rows read."""
        cache = self._rows.setdefault(table.name, {})
        self._tables[table.name] = table
        pk = self._pk(table).name
        read = []
        for row in self.conn.execute(query, params):
            found = dict(row._mapping)
            read.append(found)
            if found[pk] not in cache:
                cache[found[pk]] = found
                self._existing.setdefault(table.name, set()).add(found[pk])
        return read

    def prefetch_among(
        self, table: sa.Table, column: str, values: list[Any]
    ) -> list[dict[str, Any]]:
        """`prefetch` of the rows whose `column` is among `values` (`among`, in a statement
        built once per table and column)."""
        statement = _among_of(table, column, self.conn.dialect.name == "postgresql")
        return self.prefetch(table, statement, {"b_values": values})

    def require(self, table: sa.Table, key: Any) -> dict[str, Any]:
        row = self.get(table, key)
        if row is None:
            raise LookupError(f"{table.name} has no row {key}")
        return row

    def add(self, table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
        """A new row (written at flush)."""
        row = {**_defaults(table), **row}
        key = row[self._pk(table).name]
        self._tables[table.name] = table
        self._rows.setdefault(table.name, {})[key] = row
        self._dirty.setdefault(table.name, set()).add(key)
        return row

    def update(self, table: sa.Table, key: Any, **values: Any) -> dict[str, Any]:
        """Changes columns of an existing row (written at flush)."""
        row = self.require(table, key)
        row.update(values)
        self._dirty.setdefault(table.name, set()).add(key)
        self._changed.setdefault(table.name, {}).setdefault(key, set()).update(values)
        return row

    def replace_children(
        self, table: sa.Table, parent_column: str, parent: Any, rows: list[dict[str, Any]]
    ) -> None:
        """Replaces every row of `table` whose `parent_column` is `parent`."""
        slot = (table.name, parent_column)
        self._child_tables[slot] = table
        self._children.setdefault(slot, {})[parent] = rows

    def _insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Many new rows: COPY on PostgreSQL (projections/copy_rows.py: far fewer round
        trips), executemany elsewhere."""
        if self.conn.dialect.name != "postgresql":
            self.conn.execute(_statement(("insert", table), table.insert), rows)
            return
        copy_rows(self.conn.connection.dbapi_connection, table, rows)  # type: ignore[arg-type]

    def _update(self, table: sa.Table, rows: list[tuple[Any, dict[str, Any] | None]]) -> None:
        """executemany UPDATEs, grouped by the set of columns that changed."""
        pk = self._pk(table)
        changed = self._changed.get(table.name, {})
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for key, row in rows:
            if row is None:
                continue
            columns = frozenset(changed.get(key, set())) - {pk.name}
            if columns:
                params = {c: row[c] for c in columns}
                params["b_pk"] = key
                groups.setdefault(columns, []).append(params)
        for columns, params_list in groups.items():
            statement = _update_of(table, columns)
            self.conn.execute(statement, params_list)

    def flush(self) -> None:
        for name, keys in self._dirty.items():
            table = self._tables[name]
            rows = self._rows[name]
            existing = self._existing.get(name, set())
            inserts: list[dict[str, Any]] = []
            updates: list[tuple[Any, dict[str, Any] | None]] = []
            for key in keys:  # one pass (a UUID key hashes in Python, per lookup)
                row = rows[key]
                if key in existing:
                    updates.append((key, row))
                elif row is not None:
                    inserts.append(row)
            if inserts:
                self._insert(table, inserts)
            if updates:
                self._update(table, updates)
        for (name, column), by_parent in self._children.items():
            table = self._child_tables[(name, column)]
            parents = list(by_parent)
            delete = _delete_of(table, column)
            for i in range(0, len(parents), 500):
                self.conn.execute(delete, {"b_parents": parents[i : i + 500]})
            fresh = [row for children in by_parent.values() for row in children]
            if fresh:
                self._insert(table, fresh)


_DEFAULTS: dict[sa.Table, dict[str, Any]] = {}
_PKS: dict[sa.Table, sa.Column[Any]] = {}


def _primary_key(table: sa.Table) -> sa.Column[Any]:
    column = _PKS.get(table)
    if column is None:  # looked up once per table: iterating the key costs per row
        (column,) = table.primary_key.columns
        _PKS[table] = column
    return column


# A batch's statements, built once per table (and set of columns) with bound parameters:
# SQLAlchemy computes a statement's cache key once per object, not once per execution, and
# a projector builds a batch per projection on every write.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _statement(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = build()
    return found


def _by_key(table: sa.Table) -> Any:
    """SELECT the row whose primary key is `:b_key`."""
    return _statement(
        ("get", table), lambda: sa.select(table).where(_primary_key(table) == sa.bindparam("b_key"))
    )


def _update_of(table: sa.Table, columns: frozenset[str]) -> Any:
    """UPDATE these columns of the row whose primary key is `:b_pk`."""
    return _statement(
        ("update", table, columns),
        lambda: (
            table.update()
            .where(_primary_key(table) == sa.bindparam("b_pk"))
            .values({c: sa.bindparam(c) for c in sorted(columns)})
        ),
    )


def _delete_of(table: sa.Table, column: str) -> Any:
    """DELETE the rows whose `column` is in `:b_parents`."""
    return _statement(
        ("delete", table, column),
        lambda: table.delete().where(
            table.c[column].in_(sa.bindparam("b_parents", expanding=True))
        ),
    )


def _among_of(table: sa.Table, column: str, postgres: bool) -> Any:
    """SELECT the rows whose `column` is in `:b_values`; on PostgreSQL `= ANY(array)` (one
    parameter and one plan for any number of values, as `Batch.among`)."""

    def build() -> Any:
        c = table.c[column]
        if postgres:
            values = sa.bindparam("b_values", type_=postgresql.ARRAY(c.type))
            return sa.select(table).where(c == sa.any_(values))
        return sa.select(table).where(c.in_(sa.bindparam("b_values", expanding=True)))

    return _statement(("among", table, column, postgres), build)


def _defaults(table: sa.Table) -> dict[str, Any]:
    """Every column of a new row (so multi-row INSERTs see the same keys)."""
    cached = _DEFAULTS.get(table)  # by table, not name: two tables may share a name
    if cached is None:
        cached = {}
        for column in table.columns:
            default = column.default
            scalar = isinstance(default, sa.ColumnDefault) and default.is_scalar
            cached[column.name] = default.arg if scalar else None  # type: ignore[union-attr]
        _DEFAULTS[table] = cached
    return cached
