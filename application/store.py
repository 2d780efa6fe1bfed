"""The store port: the event store as the use cases see it.

`Store` wraps the eventsourcing `Application` that holds every aggregate, so all events
share one global, gapless log (positions) that projections and audits read. Commands use
`load` → act on the aggregate → `save` (one transaction, returns the position reached),
inside `retrying` when a lost optimistic-concurrency race should be tried again. `logins` counts
failed log-ins (application/throttle.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
)
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    Notification,
    Recording,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from application import access_facts, log_reads, transcoder
from application.aggregate_cache import AggregateCache, replay
from application.attempts import Attempts
from application.log_reads import StoredEvent
from application.probes import Probes, connect_like
from application.throttle import LoginThrottle
from domain.clock import Clock, SystemClock
from domain.credentials import Passwords
from domain.ingest import PartitionProgress
from domain.installation import Installation
from domain.topics import register_moved_topics

A = TypeVar("A", bound=Aggregate)
B = TypeVar("B", bound=Aggregate)
R = TypeVar("R")
T = TypeVar("T")

# A version past any aggregate's (Store.load with cached=False).
LATEST = 2**62
# Facts kept by `remembered` (roles, issued tokens): a bound on memory, not on correctness.
REMEMBER = 100_000


@dataclass(frozen=True)
class Outcome:
    """What a command did: the aggregate it acted on and the log position it reached.

    `position` is None when the command changed nothing (an idempotent repeat).
    """

    id: UUID
    position: int | None


class EventLog(Application[UUID]):
    """The eventsourcing application underneath. Its name names the PostgreSQL tables."""

    name = "AppStore"
    # Busy connectors give installations long histories (one event per incident report),
    # and each partition of their topic one progress event per batch.
    snapshotting_intervals = {Installation: 100, PartitionProgress: 100}

    def construct_transcoder(self) -> Any:
        """eventsourcing's, encoding the same bytes faster (application/transcoder.py)."""
        return transcoder.faster(super().construct_transcoder())

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """As eventsourcing's, but an aggregate is known by its class: its ProcessingEvent
        asks two runtime-checkable Protocols of each object (~5% of a command's time)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            elif obj is not None:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        if getattr(self.recorder, "keeps_facts", False):  # what token checks read
            facts = access_facts.rows(processing_event.aggregates.values(), processing_event.events)
            if facts:
                processing_event.saved_kwargs["facts"] = facts
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # deprecated in eventsourcing: kept as it was
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshots a just-saved aggregate whose events passed a multiple of its interval,
        as it is in memory (its state at its last event: a snapshot is good at any version).
        eventsourcing reads it back and replays it: a third of a busy consumer's time."""
        if self.snapshots is None:
            return
        due: dict[UUID, Any] = {}
        for stored in processing_event.events:
            aggregate: Any = processing_event.aggregates.get(stored.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate))
            if aggregate is not None and interval and stored.originator_version % interval == 0:
                due[aggregate.id] = aggregate
        snapshots = []
        for aggregate in due.values():
            snapshot_class: Any = getattr(type(aggregate), "Snapshot", self.snapshot_class)
            snapshots.append(snapshot_class.take(aggregate))
        if snapshots:
            self.snapshots.put(snapshots)  # one transaction for all


class Store:
    """Load, save, retry; the log read by position; facts worth remembering."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock | None = None,
        passwords: Passwords | None = None,
        aggregate_cache: int = 0,
    ) -> None:
        register_moved_topics()
        self.application = EventLog(env)
        # Loads fast-forward cached copies (application/aggregate_cache.py), several at once.
        self._cache = (
            AggregateCache(self.application, aggregate_cache) if aggregate_cache > 0 else None
        )
        self.clock: Clock = clock or SystemClock()
        self.passwords = passwords or Passwords()
        self.logins = LoginThrottle(self.clock)
        self._facts: OrderedDict[Hashable, Any] = OrderedDict()
        self._facts_lock = threading.Lock()
        self._current: OrderedDict[UUID, Aggregate] = OrderedDict()  # see current()
        recorder = self.application.recorder
        # A first attempt trusts kept copies where the append can confirm them.
        self._attempts = Attempts(
            self._cache is not None and getattr(recorder, "confirms_reads", False)
        )
        self._probes = (  # see changed()
            Probes(connect_like(recorder.datastore.pool))
            if isinstance(recorder, PostgresApplicationRecorder)
            else None
        )
        # SQLite has one writer. eventsourcing's pool keeps its queue of connection requests
        # blocked while a second writer waits for the first; if the first waits for SQLite's
        # lock held by a projector step that needs a reader, all wait until a timeout.
        # Writers of this process queue here instead, outside the pool.
        self._one_writer: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock()
            if isinstance(self.application.recorder, SQLiteApplicationRecorder)
            else contextlib.nullcontext()
        )

    # --- aggregates ---------------------------------------------------------------------
    def load(self, aggregate_id: UUID, kind: type[A], *, cached: bool = True) -> A | None:
        """The aggregate with this id if it is a `kind`, else None. `cached=False` skips
        the aggregate cache (for a caller that keeps its own copies): a copy the cache took
        long ago would replay every event since instead of the newest snapshot."""
        app = self.application
        if self._cache is not None and (cached or kind not in app.snapshotting_intervals):
            (copy,) = self._cache.load([(aggregate_id, kind)], self._attempts.current())
            return cast(A | None, copy)
        aggregate: Any
        if not cached and kind in app.snapshotting_intervals:
            try:  # a version skips the cache; this one is past any: the latest state
                aggregate = app.repository.get(aggregate_id, version=LATEST)
            except AggregateNotFoundError:
                return None
        elif kind in app.snapshotting_intervals:
            try:
                aggregate = app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        else:
            # Only installations are snapshotted: other kinds skip the repository's
            # snapshot lookup, a database round trip that cost a third of a command.
            aggregate = replay(None, app.events.get(aggregate_id))
        return aggregate if isinstance(aggregate, kind) else None

    def load_pair(
        self,
        first: UUID,
        first_kind: type[A],
        second: UUID,
        second_kind: type[B],
        *,
        second_new: bool = False,
    ) -> tuple[A | None, B | None]:
        """Two aggregates, as `load` gives each; with the aggregate cache, in one read.
        `second_new`: the second is expected not to exist yet (a uniqueness claim about
        to be made); in a first attempt that trusts copies, an unknown one is taken as
        absent until the append confirms it (application/attempts.py)."""
        if self._cache is None:
            return self.load(first, first_kind), self.load(second, second_kind)
        one, two = self._cache.load(
            [(first, first_kind), (second, second_kind)],
            self._attempts.current(),
            frozenset([second]) if second_new else frozenset(),
        )
        return cast(A | None, one), cast(B | None, two)

    def load_version(self, aggregate_id: UUID, version: int | None = None) -> Any | None:
        """Any aggregate as it was at `version` (default: now), or None if there is none."""
        try:
            aggregate: Any = self.application.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            return None
        # The repository answers a version past the last with the latest state: no answer.
        return aggregate if version is None or aggregate.version == version else None

    def changed_since(self, aggregate_id: UUID, version: int) -> bool:
        """Whether the aggregate has an event after `version`: one indexed read, nothing
        decoded (for facts that stay true until one later event, like a session's end)."""
        return aggregate_id in self.changed({aggregate_id: version})

    def changed(self, versions: dict[UUID, int]) -> set[UUID]:
        """Which of these aggregates have an event after the given version: ONE read of
        the log (a primary-key probe per aggregate, one statement for any number), nothing
        decoded (kept copies of token checks, and of the Kafka worker's batches)."""
        return log_reads.changed(self.application.recorder, self._probes, versions)

    def access_facts(self, token_id: UUID) -> access_facts.Facts | None:
        """A token's facts with its installation's and grant's, each at its latest version,
        in one read (application/access_facts.py); None when the log keeps none for it (an
        unknown token, SQLite, a row not written or outdated: load the aggregates instead)."""
        found = log_reads.access_facts(self.application.recorder, self._probes, token_id)
        return access_facts.decoded(token_id, *found) if found is not None else None

    def current(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        """The aggregate's latest state, FOR READING ONLY (never change or save it).

        The last copy read is kept per process; each call asks the log one question — has
        it an event after that copy's version? — and replays only when it has (checks that
        read the same installation or grant again and again: token introspection).
        """
        found: A | None = self.current_all((aggregate_id, kind))[0]
        return found

    def current_all(self, *wanted: tuple[UUID, type[Aggregate]]) -> list[Any]:
        """`current` of several aggregates (each `(id, kind)`), asking the log about every
        kept copy in one read (`changed`) rather than one read each."""
        with self._facts_lock:
            known = [self._current.get(aggregate_id) for aggregate_id, _ in wanted]
        kept = {
            aggregate_id: copy
            for (aggregate_id, kind), copy in zip(wanted, known, strict=True)
            if isinstance(copy, kind)
        }
        stale = self.changed({i: a.version for i, a in kept.items()})
        wanted_now = [(i, kind) for i, kind in wanted if i not in kept or i in stale]
        if not wanted_now:
            return [kept[i] for i, _ in wanted]
        if self._cache is not None:  # all in one read
            loaded = self._cache.load(wanted_now, self._attempts.current())
        else:
            loaded = [self.load(i, kind) for i, kind in wanted_now]
        fresh = {i: found for (i, _), found in zip(wanted_now, loaded, strict=True)}
        with self._facts_lock:
            for aggregate_id, found in fresh.items():
                if found is not None:
                    self._current[aggregate_id] = found
                    self._current.move_to_end(aggregate_id)
            while len(self._current) > REMEMBER:
                self._current.popitem(last=False)
        return [fresh[i] if i in fresh else kept[i] for i, _ in wanted]

    def forget(self) -> None:
        """Drops every remembered fact and kept copy (a cold process, for benches)."""
        with self._facts_lock:
            self._facts.clear()
            self._current.clear()
        if self._cache is not None:
            self._cache.clear()

    def events_of(self, aggregate_id: UUID) -> list[DomainEventProtocol[UUID]]:
        """Every event of one aggregate, decoded, in version order."""
        return list(self.application.events.get(aggregate_id))

    def save(self, *aggregates: Aggregate | None) -> int | None:
        """Appends the aggregates' new events in one transaction; the position reached.

        Raises eventsourcing's IntegrityError when another writer got there first.
        """
        reads = self._attempts.current()
        confirm = {}
        if reads is not None and reads.trusted:
            confirm["unchanged"] = _unwritten(reads.trusted, aggregates)
        with self._one_writer:
            recordings: list[Recording[UUID]] = self.application.save(*aggregates, **confirm)
        if reads is not None and recordings:
            reads.trusted.clear()  # confirmed by the append
        if self._cache is not None:
            self._cache.saved([a for a in aggregates if a is not None])
        return recordings[-1].notification.id if recordings else None

    def retrying(self, attempt: Callable[[], R]) -> R:
        """Runs a read-decide-append attempt again when another writer got there first
        (or, in a first attempt that trusted kept copies, when one had changed:
        application/attempts.py)."""
        return self._attempts.run(attempt, lambda versions: bool(self.changed(versions)))

    def remembered(self, key: Hashable, compute: Callable[[], T | None]) -> T | None:
        """A fact that never changes once known (an account's role, an issued token),
        computed once per process; None answers are not kept."""
        with self._facts_lock:
            if key in self._facts:
                self._facts.move_to_end(key)
                found: T = self._facts[key]
                return found
        value = compute()
        if value is not None:
            with self._facts_lock:
                self._facts[key] = value
                while len(self._facts) > REMEMBER:
                    self._facts.popitem(last=False)
        return value

    # --- the global log -----------------------------------------------------------------
    def head(self) -> int:
        """The position of the newest event in the log (0 when empty)."""
        return self.application.recorder.max_notification_id() or 0

    def notifications(
        self, start: int, limit: int, *, inclusive: bool = True
    ) -> Sequence[Notification]:
        """At most `limit` stored events from position `start` (or after it)."""
        return log_reads.notifications(self.application.recorder, start, limit, inclusive=inclusive)

    def decode(self, notification: Notification) -> DomainEventProtocol[UUID]:
        """The domain event a stored notification holds."""
        return self.application.mapper.to_domain_event(notification)

    def decode_state(self, state: bytes) -> dict[str, Any]:
        """An event's stored attributes as a dict (for audits)."""
        return dict(self.application.mapper.transcoder.decode(state))

    def stored_events(self, aggregate_id: UUID) -> list[StoredEvent]:
        """Every stored event of one aggregate in version order, with global positions."""
        return log_reads.stored_events(self.application.recorder, aggregate_id)

    def close(self) -> None:
        if self._probes is not None:
            self._probes.close()
        self.application.close()


def _unwritten(trusted: dict[UUID, int], aggregates: Sequence[Aggregate | None]) -> dict[UUID, int]:
    """The trusted versions the append must check. An aggregate appended from the very
    version trusted needs no check: versions follow one another, so any newer event holds
    the version its first new event takes, and the unique key refuses the append."""
    first = {
        a.id: a.pending_events[0].originator_version
        for a in aggregates
        if a is not None and a.pending_events
    }
    return {i: v for i, v in trusted.items() if first.get(i) != v + 1}
