"""Our projection runner: applies the global event log to read models, exactly once.

Each step, in ONE database transaction: lock the projection's tracking row, read the next
batch of notifications after its position, apply the projection's handlers, write the new
position, commit. A crash anywhere rolls the whole batch back, so no event is lost or
applied twice. On PostgreSQL the row is locked `FOR UPDATE SKIP LOCKED` (several projector
processes share the work, one per projection at a time); on SQLite the transaction starts
with `BEGIN IMMEDIATE`. (eventsourcing's own ProjectionRunner does not work on SQLite.)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from eventsourcing.utils import get_topic
from psycopg.types.json import Json
from sqlalchemy.engine import Connection, Engine

from domain.store import AppStore
from projections.db import UTCDateTime, metadata

Handler = Callable[["Batch", Any, int], None]

tracking = sa.Table(
    "projection_tracking",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated_at", UTCDateTime, nullable=True),
)

DEFAULT_BATCH = 1000


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
        (column,) = table.primary_key.columns
        return column

    def get(self, table: sa.Table, key: Any) -> dict[str, Any] | None:
        """The row with this primary key (from this batch, else the database), or None."""
        cache = self._rows.setdefault(table.name, {})
        if key not in cache:
            self._tables[table.name] = table
            row = self.conn.execute(sa.select(table).where(self._pk(table) == key)).first()
            cache[key] = None if row is None else dict(row._mapping)
            if row is not None:
                self._existing.setdefault(table.name, set()).add(key)
        return cache[key]

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
        """Many new rows: COPY on PostgreSQL (far fewer round trips), executemany elsewhere."""
        if self.conn.dialect.name != "postgresql":
            self.conn.execute(table.insert(), rows)
            return
        columns = [c.name for c in table.columns]
        json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
        cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        names = ", ".join(f'"{c}"' for c in columns)
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([Json(row[c]) if c in json_columns else row[c] for c in columns])

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
            statement = (
                table.update()
                .where(pk == sa.bindparam("b_pk"))
                .values({c: sa.bindparam(c) for c in sorted(columns)})
            )
            self.conn.execute(statement, params_list)

    def flush(self) -> None:
        for name, keys in self._dirty.items():
            table = self._tables[name]
            rows = self._rows[name]
            existing = self._existing.get(name, set())
            inserts = [rows[k] for k in keys if k not in existing]
            updates = [rows[k] for k in keys if k in existing]
            if inserts:
                self._insert(table, [r for r in inserts if r is not None])
            if updates:
                self._update(table, [(k, rows[k]) for k in keys if k in existing])
        for (name, column), by_parent in self._children.items():
            table = self._child_tables[(name, column)]
            parents = list(by_parent)
            for i in range(0, len(parents), 500):
                self.conn.execute(table.delete().where(table.c[column].in_(parents[i : i + 500])))
            fresh = [row for children in by_parent.values() for row in children]
            if fresh:
                self._insert(table, fresh)


def event_of(aggregate: type[Any], name: str) -> type[Any]:
    """The event class `name` of an aggregate (made by @event, so invisible to mypy)."""
    cls = getattr(aggregate, name)
    assert isinstance(cls, type), f"{aggregate.__name__}.{name} is not an event class"
    return cls


_DEFAULTS: dict[str, dict[str, Any]] = {}


def _defaults(table: sa.Table) -> dict[str, Any]:
    """Every column of a new row (so multi-row INSERTs see the same keys)."""
    cached = _DEFAULTS.get(table.name)
    if cached is None:
        cached = {}
        for column in table.columns:
            default = column.default
            scalar = isinstance(default, sa.ColumnDefault) and default.is_scalar
            cached[column.name] = default.arg if scalar else None  # type: ignore[union-attr]
        _DEFAULTS[table.name] = cached
    return cached


class Projection:
    """A read model: the tables it owns and one handler per event class it reads.

    Events of other classes only advance the tracking position.
    """

    name: str = ""
    tables: tuple[sa.Table, ...] = ()

    def handlers(self) -> Mapping[type[Any], Handler]:
        """Event class → handler(conn, event, position)."""
        raise NotImplementedError

    def finish(self, batch: Batch) -> None:
        """Writes what the handlers collected in `batch.extra` (after the rows)."""

    def topic_handlers(self) -> dict[str, Handler]:
        return {get_topic(cls): handler for cls, handler in self.handlers().items()}

    def create(self, conn: Connection) -> None:
        """Creates the tables (idempotent)."""
        for table in self.tables:
            table.create(conn, checkfirst=True)

    def drop(self, conn: Connection) -> None:
        """Drops the tables (replay rebuilds them)."""
        for table in reversed(self.tables):
            table.drop(conn, checkfirst=True)


@dataclass(frozen=True)
class StepResult:
    projection: str
    applied: int
    position: int


class Projector:
    """Runs a set of projections against one store and one read-model engine."""

    def __init__(
        self,
        store: AppStore,
        engine: Engine,
        projections: Sequence[Projection],
        *,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.store = store
        self.engine = engine
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self._topics = {p.name: p.topic_handlers() for p in projections}
        self._is_postgres = engine.dialect.name == "postgresql"
        # Decoded events by position, shared by the projections stepping over the same range.
        self._decoded: OrderedDict[int, Any] = OrderedDict()
        # Positions this process last saw per projection (they only ever grow).
        self._seen: dict[str, int] = {}
        self._last_read: tuple[tuple[int, int], Sequence[Any]] | None = None
        self.wake = threading.Event()
        self.progressed = threading.Condition()

    # --- schema -----------------------------------------------------------------------
    def setup(self) -> None:
        """Creates the tracking table, every projection's tables and tracking rows."""
        with self._begin() as conn:
            tracking.create(conn, checkfirst=True)
            for projection in self.projections.values():
                projection.create(conn)
                self._ensure_tracking_row(conn, projection.name)

    def _ensure_tracking_row(self, conn: Connection, name: str) -> None:
        exists = conn.execute(sa.select(tracking.c.name).where(tracking.c.name == name)).first()
        if exists is None:
            conn.execute(tracking.insert().values(name=name, position=0))

    def reset(self, name: str) -> None:
        """Drops and recreates one projection's tables and sets its position to 0."""
        projection = self.projections[name]
        with self._begin() as conn:
            self._lock(conn, name, wait=True)
            projection.drop(conn)
            projection.create(conn)
            conn.execute(tracking.update().where(tracking.c.name == name).values(position=0))
        self._seen.pop(name, None)

    # --- positions ----------------------------------------------------------------------
    def head(self) -> int:
        """The position of the newest event in the log (0 when empty)."""
        return self.store.recorder.max_notification_id() or 0

    def positions(self) -> dict[str, int]:
        """Each projection's tracking position."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tracking.c.name, tracking.c.position)).all()
        found = {name: int(position) for name, position in rows}
        return {name: found.get(name, 0) for name in self.projections}

    def lag(self) -> dict[str, int]:
        """Each projection's distance from the head of the log, in events."""
        head = self.head()
        return {name: max(0, head - pos) for name, pos in self.positions().items()}

    # --- processing ---------------------------------------------------------------------
    def _begin(self) -> Any:
        if self._is_postgres:
            return self.engine.begin()
        return self.engine.execution_options(immediate=True).begin()

    def _lock(self, conn: Connection, name: str, *, wait: bool) -> int | None:
        query = sa.select(tracking.c.position).where(tracking.c.name == name)
        if self._is_postgres:
            query = query.with_for_update(skip_locked=not wait)
        row = conn.execute(query).first()
        return None if row is None else int(row[0])

    def step(self, name: str, limit: int | None = None) -> StepResult:
        """Applies the next batch of events to one projection, in one transaction."""
        handlers = self._topics[name]
        with self._begin() as conn:
            position = self._lock(conn, name, wait=False)
            if position is None:  # another process holds it (or no row yet)
                return StepResult(name, 0, -1)
            notifications = self._select(position + 1, limit or self.batch_size)
            if not notifications:
                self._seen[name] = position
                return StepResult(name, 0, position)
            batch = Batch(conn)
            for notification in notifications:
                handler = handlers.get(notification.topic)
                if handler is not None:
                    handler(batch, self._decode(notification), notification.id)
            batch.flush()
            self.projections[name].finish(batch)
            last = notifications[-1].id
            conn.execute(
                tracking.update()
                .where(tracking.c.name == name)
                .values(position=last, updated_at=sa.func.now())
            )
        self._seen[name] = last
        return StepResult(name, len(notifications), last)

    def _select(self, start: int, limit: int) -> Sequence[Any]:
        """The next notifications; a full range the last step read is reused (round robin)."""
        key = (start, limit)
        cached = self._last_read
        if cached is not None and cached[0] == key:
            return cached[1]
        notifications = self.store.recorder.select_notifications(start=start, limit=limit)
        # Only a full page is final: a short one may still grow as events are appended.
        self._last_read = (key, notifications) if len(notifications) == limit else None
        return notifications

    def _decode(self, notification: Any) -> Any:
        event = self._decoded.get(notification.id)
        if event is None:
            event = self.store.mapper.to_domain_event(notification)
            self._decoded[notification.id] = event
            if len(self._decoded) > 4 * self.batch_size:
                self._decoded.popitem(last=False)
        return event

    def run_once(self) -> int:
        """One step of every projection behind the head; returns the events applied.

        Idle polls cost one cheap read of the head, no write transaction.
        """
        head = self.head()
        behind = [n for n in self.projections if self._seen.get(n, -1) < head]
        applied = sum(self.step(name).applied for name in behind)
        if applied:
            with self.progressed:
                self.progressed.notify_all()
        return applied

    def catch_up(
        self,
        names: Iterable[str] | None = None,
        on_progress: Callable[[StepResult], None] | None = None,
    ) -> int:
        """Runs the projections until they reach the head of the log."""
        pending = list(names or self.projections)
        total = 0
        # Round robin, so the projections share decoded events of the same range.
        while pending:
            for name in list(pending):
                result = self.step(name)
                total += result.applied
                if on_progress is not None:
                    on_progress(result)
                if result.applied == 0:
                    pending.remove(name)
        if total:
            with self.progressed:
                self.progressed.notify_all()
        return total

    def run_forever(self, stop: threading.Event, interval: float = 0.05) -> None:
        """Polls the log until `stop` is set; `wake` (set by writers) skips the wait."""
        while not stop.is_set():
            try:
                applied = self.run_once()
            except sa.exc.OperationalError:
                applied = 0  # database busy or restarting: try again shortly
                time.sleep(interval)
            if applied:
                continue
            self.wake.wait(interval)
            self.wake.clear()

    def wait(self, position: int, timeout: float) -> bool:
        """Blocks until every projection has reached `position` (or the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            if min(self.positions().values(), default=position) >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wake.set()
            with self.progressed:
                self.progressed.wait(min(remaining, 0.02))
