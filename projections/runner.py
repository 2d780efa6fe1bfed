"""Our projection runner: applies the global event log to read models, exactly once.

Each step, in ONE database transaction: lock the projection's tracking row, read the next
batch of notifications after its position, apply the projection's handlers, write the new
position, commit. A crash anywhere rolls the whole batch back, so no event is lost or
applied twice. On PostgreSQL the row is locked `FOR UPDATE SKIP LOCKED` (several projector
processes share the work, one per projection at a time); on SQLite the transaction starts
with `BEGIN IMMEDIATE`. (eventsourcing's own ProjectionRunner does not work on SQLite.)

A read model whose tables or `version` changed since it was built, or one of whose tables
is missing, is rebuilt from the log when the runner sets up (read models are rebuilt, never
migrated by hand).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial

from eventsourcing.utils import get_topic
from sqlalchemy.engine import Connection, Engine

from application.loops import LoopHealth, SupervisedLoop
from application.store import Store
from projections.batch import Batch
from projections.lanes import Lanes
from projections.log_pages import LogPages
from projections.process_lanes import ProcessLanes, Spawn, groups
from projections.projection import Handler, Projection
from projections.schema_upkeep import SchemaUpkeep
from projections.tracking import (
    ADVANCE,
    POSITION,
    POSITION_FOR_UPDATE,
    POSITIONS,
    POSITIONS_OF,
    POSITIONS_OF_FOR_UPDATE,
    Measured,
    StepResult,
    lock_and_advance,
    tracking,
)

# What other modules import from here (`tracking` and the step's results live in
# projections/tracking.py).
__all__ = ["DEFAULT_BATCH", "MEASURE_EVERY", "Measured", "Projector", "StepResult", "tracking"]

DEFAULT_BATCH = 1000
DEFAULT_LANES = 2
# Seconds between lag measurements of an idle projector (a busy one measures every batch).
MEASURE_EVERY = 1.0


class Projector(SchemaUpkeep):
    """Runs a set of projections against one store and one read-model engine."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        projections: Sequence[Projection],
        *,
        batch_size: int = DEFAULT_BATCH,
        lanes: int = DEFAULT_LANES,
    ) -> None:
        self.store = store
        self.engine = engine
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self._topics: dict[str, dict[str, Handler]] = {
            p.name: {get_topic(h.event): h.handler for h in p.handlers()} for p in projections
        }
        self._is_postgres = engine.dialect.name == "postgresql"
        # Made once: `execution_options` builds a new engine proxy on every call.
        self._immediate = engine.execution_options(immediate=True)
        # The connection a round (`run_once`, `catch_up`) holds for its steps, per thread:
        # checked out (and pinged) once a round, not once a step.
        self._held = threading.local()
        # False for `appstore replay`: a step's COMMIT does not wait for the WAL to reach the
        # disk (PostgreSQL `synchronous_commit = off`). A server crash may then forget the
        # last steps, rows and position together (never one without the other), and the
        # replay goes on from the position it finds: safe for a model rebuilt from the log.
        self.durable = True
        self.pages = LogPages(store, keep=4 * batch_size)  # read and decoded once
        # Connections a catch-up steps its projections on at once (PostgreSQL; one lane per
        # projection at most): see projections/lanes.py.
        self.lanes = lanes
        # Positions this process last saw per projection (they only ever grow).
        self._seen: dict[str, int] = {}
        self.wake = threading.Event()
        self.progressed = threading.Condition()
        self.measured: Measured | None = None
        # Builds this projector's like in another process (`processes`), if set.
        self.spawn: Spawn | None = None
        self._remote: ProcessLanes | None = None

    # --- positions ----------------------------------------------------------------------
    def head(self) -> int:
        """The position of the newest event in the log (0 when empty)."""
        return self.store.head()

    def positions(self) -> dict[str, int]:
        """Each projection's tracking position."""
        with self.engine.connect() as conn:
            rows = conn.execute(POSITIONS).all()
        found = {name: int(position) for name, position in rows}
        return {name: found.get(name, 0) for name in self.projections}

    def lag(self) -> dict[str, int]:
        """Each projection's distance from the head of the log, in events."""
        head = self.head()
        return {name: max(0, head - pos) for name, pos in self.positions().items()}

    # --- processing ---------------------------------------------------------------------
    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction (SQLite: `BEGIN IMMEDIATE`) on the connection this thread's round
        holds, else on one from the pool."""
        held: Connection | None = getattr(self._held, "conn", None)
        if held is not None:
            with held.begin():
                yield held
            return
        with (self.engine if self._is_postgres else self._immediate).begin() as conn:
            yield conn

    @contextmanager
    def _holding(self) -> Iterator[None]:
        """This thread's steps until the end of the block share one pooled connection (a
        step is still a transaction of its own; a round in a round keeps the outer one)."""
        if getattr(self._held, "conn", None) is not None:
            yield
            return
        with (self.engine if self._is_postgres else self._immediate).connect() as conn:
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = None

    def _lock(self, conn: Connection, name: str, *, wait: bool) -> int | None:
        query = POSITION_FOR_UPDATE[wait] if self._is_postgres else POSITION
        row = conn.execute(query, {"name": name}).first()
        return None if row is None else int(row[0])

    def step(self, name: str, limit: int | None = None, *, wait: bool = False) -> StepResult:
        """Applies the next batch of events to one projection, in one transaction; one
        another process (or thread) is stepping is left (position -1), or with `wait`
        stepped once that step has ended."""
        handlers = self._topics[name]
        size = limit or self.batch_size
        # On PostgreSQL the page after the position this process last saw is read before
        # the lock, and the lock moves the position past it in the same statement if it is
        # still there (LOCK_AND_ADVANCE): no tracking UPDATE of its own at the end.
        expected = self._seen.get(name) if self._is_postgres else None
        guess = self.pages.select(expected + 1, size) if expected is not None else ()
        with self._begin() as conn:
            if guess and expected is not None:
                durable = self.durable
                position, moved = lock_and_advance(
                    conn, name, wait, expected, guess[-1].id, durable
                )
            else:
                position, moved, durable = self._lock(conn, name, wait=wait), False, True
            if position is None:  # another process holds it (or no row yet)
                return StepResult(name, 0, -1)
            if not self.durable and self._is_postgres and durable:  # not set by the above
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            notifications = guess if moved else self.pages.select(position + 1, size)
            if not notifications:
                self._seen[name] = position
                return StepResult(name, 0, position)
            batch = Batch(conn)
            mine = [
                (handler, self.pages.decode(n), n.id)
                for n in notifications
                if (handler := handlers.get(n.topic)) is not None
            ]
            projection = self.projections[name]
            if mine:
                projection.prepare(batch, [event for _, event, _ in mine])
            for handler, event, at in mine:
                handler(batch, event, at)
            batch.flush()
            projection.finish(batch)
            last = notifications[-1].id
            if not moved:
                conn.execute(ADVANCE, {"b_name": name, "b_position": last})
        self._seen[name] = last
        return StepResult(name, len(notifications), last)

    def _advance_idle(self, names: list[str]) -> dict[str, int]:
        """Moves the projections among `names` whose next events none of their handlers
        takes past those events, all in ONE transaction (a step each would cost a
        transaction each, for no row: a decline concerns one projection of six); returns
        the events each moved past. A row another process holds (PostgreSQL) is left."""
        moved: dict[str, int] = {}
        seen: dict[str, int] = {}
        with self._begin() as conn:
            query = POSITIONS_OF_FOR_UPDATE if self._is_postgres else POSITIONS_OF
            for name, position in conn.execute(query, {"names": names}).all():
                notifications = self.pages.select(int(position) + 1, self.batch_size)
                handlers = self._topics[name]
                if not notifications or any(n.topic in handlers for n in notifications):
                    continue
                last = notifications[-1].id
                conn.execute(ADVANCE, {"b_name": name, "b_position": last})
                moved[name], seen[name] = len(notifications), last
        self._seen.update(seen)
        return moved

    def run_once(self) -> int:
        """One step of every projection behind the head; returns the events applied.

        Idle polls cost one cheap read of the head, no write transaction.
        """
        head = self.head()
        behind = [n for n in self.projections if self._seen.get(n, -1) < head]
        with self.pages.round(), self._holding():
            idle = self._advance_idle(behind) if len(behind) > 1 else {}
            applied = sum(idle.values())
            applied += sum(self.step(name).applied for name in behind if name not in idle)
        if applied:
            with self.progressed:
                self.progressed.notify_all()
        return applied

    def catch_up(
        self,
        names: Iterable[str] | None = None,
        on_progress: Callable[[StepResult], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Runs the projections until they reach the head of the log (a projection another
        thread or process is stepping meanwhile: after its step, from where it left it), or
        until `stop` is set (at the end of a round)."""
        pending = list(dict.fromkeys(names or self.projections))
        total = 0
        # Round robin, so the projections share decoded events of the same range. Within
        # `processes`, the other processes step their shares (projections/process_lanes.py).
        remote = self._remote
        theirs = set() if remote is None else remote.names
        with self.rounds([n for n in pending if n not in theirs]) as here:
            while pending and not (stop is not None and stop.is_set()):
                ended = here(pending) if remote is None else remote.run(pending, here, self.durable)
                for result in ended:
                    total += result.applied
                    if on_progress is not None:
                        on_progress(result)
                    if result.applied == 0:
                        pending.remove(result.projection)
        if total:
            with self.progressed:
                self.progressed.notify_all()
        return total

    @contextmanager
    def rounds(self, names: Sequence[str]) -> Iterator[Callable[[list[str]], list[StepResult]]]:
        """Within the block, a function stepping each of the names it is given once (a round;
        the results in that order). On PostgreSQL the page after the current one is read and
        decoded meanwhile (projections/log_pages.py), for these names' topics, and a round's
        steps run on `lanes` connections at once (projections/lanes.py)."""
        topics = {topic for name in names for topic in self._topics[name]}
        ahead = self.pages.reading_ahead(topics) if self._is_postgres else nullcontext()
        extra = min(self.lanes, len(names)) - 1 if self._is_postgres else 0
        with self._holding(), ahead as shared:

            @contextmanager
            def lane() -> Iterator[None]:
                with self._holding(), self.pages.sharing(shared):
                    yield

            with Lanes(extra, partial(self.step, wait=True), lane) as lanes:
                yield lambda wanted: lanes.run(wanted, self._cost) if wanted else []

    @contextmanager
    def processes(self, count: int) -> Iterator[int]:
        """Within the block, catch-ups step the read models in `count` processes, this one
        among them, each over a share of about equal cost (projections/process_lanes.py):
        on PostgreSQL, with `spawn` set by the composition root, and no more processes than
        cores; else in this one. Yields the number of processes."""
        projections = list(self.projections.values())
        shares = groups(projections, min(count, os.cpu_count() or 1))  # a core each at most
        if len(shares) < 2 or not self._is_postgres or self.spawn is None:
            yield 1
            return
        with ProcessLanes(self.spawn, shares[1:], self.batch_size) as remote:
            self._remote = remote
            try:
                yield len(shares)
            finally:
                self._remote = None

    def settle(self) -> None:
        """Waits until the read-aheads of this process's catch-up and of its other processes
        have read their pages: a benchmark timing its own work between rounds times none of
        theirs."""
        self.pages.settle()
        if self._remote is not None:
            self._remote.settle()

    def close(self) -> None:
        """Releases the projector's connections and its store's."""
        self.engine.dispose()
        self.store.close()

    def _cost(self, name: str) -> float:
        return self.projections[name].replay_cost

    def measure(self) -> Measured:
        """Reads the head and the positions now (kept in `measured` for /readyz)."""
        head = self.head()
        self.measured = Measured(head, self.positions(), time.monotonic())
        return self.measured

    def loop(self, interval: float = 0.05, health: LoopHealth | None = None) -> SupervisedLoop:
        """The supervised polling loop: survives any error (backoff), reports its lag.

        `wake` (set by writers in this process) ends an idle wait at once.
        """
        health = health or LoopHealth("projector")

        def poll() -> bool:
            applied = self.run_once()
            last = self.measured
            if applied or last is None or time.monotonic() - last.at >= MEASURE_EVERY:
                health.report_lag(max(self.measure().lag.values(), default=0))
            return applied > 0

        return SupervisedLoop("projector", poll, interval=interval, health=health, wake=self.wake)

    def run_forever(self, stop: threading.Event, interval: float = 0.05) -> None:
        """Polls the log until `stop` is set, whatever errors come meanwhile."""
        self.loop(interval).run(stop)

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
