"""Aggregates this process read or saved lately, kept to save commands their reads.

A cached copy is a state the aggregate really had (at its version); it is never trusted as
the latest. Every load asks the log for the events after that version — one indexed read,
for several aggregates at once (`AggregateCache.load`) — and replays only those. So another
process's write is always seen, and a write decided on a copy that went stale between the
read and the append still loses on the event store's unique (id, version) key: the command's
`Store.retrying` then loads again. What it saves is the decoding of whole histories, the
snapshot look-up of a snapshotted kind already known, and, after a save, the first read of
the aggregate just written (the state saved is put in the cache).

Copies are kept pickled: commands change what they load, so each load gets an object of its
own, and a command that fails half-way leaves nothing behind. (Unpickling costs a fifth of
a `deepcopy`; an aggregate that cannot be pickled is simply not cached.) A state just saved
is kept as the saved object itself, not pickled (a sixth of a command's client time; most
are never loaded again in this process): the first load gets that very object, if nothing
else refers to it any more (its saver let it go, so no one can change it while it changes
hands) and it is still the state saved, and the cache keeps it pickled from then on; else
the log is read.
"""

from __future__ import annotations

import pickle
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from application.attempts import Reads

# Stored events after a version, for several (aggregate id, version) pairs at once.
EventsAfter = Callable[[Sequence[tuple[UUID, int]]], Sequence[StoredEvent]]
# The same, with the newest snapshot of some and their events after it (in a snapshots table).
Newest = Callable[
    [Sequence[tuple[UUID, int]], Sequence[UUID], str],
    tuple[Sequence[StoredEvent], Sequence[StoredEvent]],
]


class _Copy(NamedTuple):
    version: int
    pickled: bytes | None
    saved: Aggregate | None = None  # the saved object itself (pickled: None), until loaded


class AggregateCache:
    """At most `maxsize` aggregates, least recently used dropped first."""

    def __init__(self, application: Application[UUID], maxsize: int) -> None:
        self.application = application
        self.maxsize = maxsize
        self._copies: OrderedDict[UUID, _Copy] = OrderedDict()
        self._lock = threading.Lock()
        recorder: Any = application.recorder
        # One round trip for all on PostgreSQL (application/postgres_log.py); else one each.
        self._events_after: EventsAfter = getattr(recorder, "select_events_after", self._one_by_one)
        # With it, a snapshotted aggregate not known yet comes in the same round trip.
        self._newest: Newest | None = getattr(recorder, "select_newest", None)
        snapshots: Any = application.snapshots
        self._snapshots_table: str = getattr(
            snapshots and snapshots.recorder, "events_table_name", ""
        )

    def load(
        self,
        wanted: Sequence[tuple[UUID, type[Aggregate]]],
        reads: Reads | None = None,
        new: frozenset[UUID] = frozenset(),
    ) -> list[Aggregate | None]:
        """The latest state of each wanted aggregate (an object of the caller's own), None
        where there is none or it is not of the kind wanted.

        In an attempt that may trust copies (application/attempts.py), a kept copy is
        answered as it is, and an unknown aggregate the caller expects to be `new` as
        absent (version 0), each version noted in `reads`; the log is asked for the rest."""
        app = self.application
        with self._lock:
            known = {i: self._copies.get(i) for i, _ in wanted}
        # Each kept copy as an object of the caller's own (None: read it from the log).
        own = {i: self._own(i, copy) if copy is not None else None for i, copy in known.items()}
        found: dict[UUID, Aggregate | None] = {}
        after: list[tuple[UUID, int]] = []
        snapshotted: list[UUID] = []
        trusting = reads is not None and reads.trusting
        for aggregate_id, kind in wanted:
            copy = own[aggregate_id]
            if trusting and copy is not None:
                assert reads is not None
                found[aggregate_id] = copy[1]
                reads.trust(aggregate_id, copy[0])
            elif trusting and aggregate_id in new:
                assert reads is not None
                found[aggregate_id] = None
                reads.trust(aggregate_id, 0)
            elif copy is None and kind in app.snapshotting_intervals:
                # Not known yet: from the latest snapshot on (read with the rest when the
                # recorder can, else by the repository).
                if self._newest is not None and self._snapshots_table:
                    snapshotted.append(aggregate_id)
                    continue
                try:
                    found[aggregate_id] = app.repository.get(aggregate_id)
                except AggregateNotFoundError:
                    found[aggregate_id] = None
            else:
                after.append((aggregate_id, copy[0] if copy is not None else 0))
        newer: dict[UUID, list[Any]] = {i: [] for i in [*(i for i, _ in after), *snapshotted]}
        stored_events: Sequence[StoredEvent] = ()
        snapshots: Sequence[StoredEvent] = ()
        if snapshotted and self._newest is not None:
            stored_events, snapshots = self._newest(after, snapshotted, self._snapshots_table)
        elif after:
            stored_events = self._events_after(after)
        for stored in [*snapshots, *stored_events]:  # a snapshot sorts before what follows it
            newer[_uuid(stored.originator_id)].append(app.mapper.to_domain_event(stored))
        for aggregate_id, events in newer.items():
            copy = own[aggregate_id]
            events.sort(key=lambda e: e.originator_version)
            found[aggregate_id] = replay(copy[1] if copy is not None else None, events)
        for aggregate_id, aggregate in found.items():
            copy = own[aggregate_id]
            if aggregate is not None and (copy is None or aggregate.version != copy[0]):
                self._keep(aggregate)
        return [
            aggregate if isinstance(aggregate := found[i], kind) else None for i, kind in wanted
        ]

    def saved(self, aggregates: Sequence[Aggregate]) -> None:
        """Keeps the state of aggregates just appended (at their stored version), as the
        objects themselves until a load takes them (`_own`)."""
        for aggregate in aggregates:
            self._put(aggregate.id, _Copy(aggregate.version, None, aggregate))

    def clear(self) -> None:
        with self._lock:
            self._copies.clear()

    def _own(self, aggregate_id: UUID, copy: _Copy) -> tuple[int, Aggregate] | None:
        """(version, an object of the caller's own) of a kept copy: unpickled; or, for a
        state kept as the saved object, that object itself — only if nothing but the cache
        refers to it any more (its saver let it go, so nothing can change it while it is
        pickled and handed over) and it is still the state saved; the cache keeps it
        pickled from then on. Else None: the copy is dropped and the log read."""
        if copy.pickled is not None:
            return copy.version, pickle.loads(copy.pickled)
        with self._lock:
            if self._copies.get(aggregate_id) is not copy:
                return None  # taken by another load meanwhile
            del self._copies[aggregate_id]
            saved = copy.saved
            if (
                saved is None
                or sys.getrefcount(saved) > _ONLY_KEPT
                or saved.version != copy.version
                or saved.pending_events
            ):
                return None
        self._keep(saved)  # (no one else can reach it: taken out of the cache above)
        return copy.version, saved

    def _keep(self, aggregate: Aggregate) -> None:
        try:
            copy = _Copy(aggregate.version, pickle.dumps(aggregate, pickle.HIGHEST_PROTOCOL))
        except (pickle.PicklingError, TypeError, AttributeError):
            return  # not cached: loaded from the log each time
        self._put(aggregate.id, copy)

    def _put(self, aggregate_id: UUID, copy: _Copy) -> None:
        with self._lock:
            current = self._copies.get(aggregate_id)
            if current is not None and current.version > copy.version:
                return  # another thread already kept a newer state
            self._copies[aggregate_id] = copy
            self._copies.move_to_end(aggregate_id)
            while len(self._copies) > self.maxsize:
                self._copies.popitem(last=False)

    def _one_by_one(self, after: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        recorder = self.application.recorder
        return [e for i, v in after for e in recorder.select_events(i, gt=v)]


def _refs_of_a_saved_object_only_kept() -> int:
    """What `sys.getrefcount` says in `_own` of a saved object nothing else refers to:
    measured the same way (the copy in the cache, a local name), not assumed."""
    copies = {0: _Copy(0, None, cast(Aggregate, object()))}
    copy = copies[0]
    saved = copy.saved
    return sys.getrefcount(saved)


_ONLY_KEPT = _refs_of_a_saved_object_only_kept()


def replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's `project_aggregate` without its assertion that each event satisfies
    a runtime-checkable Protocol (a tenth of a cold token check's time): the events come
    from its mapper, typed by their topics."""
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
