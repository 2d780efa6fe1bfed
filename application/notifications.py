"""The seller's notifications: marking one read, or many at once (the list itself is a
read model)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.store import Outcome, Store
from domain.errors import NotificationNotFound
from domain.notification import NotificationRead, notification_read_id


def mark_read(store: Store, seller_id: UUID, notification_id: UUID, *, known: bool) -> Outcome:
    """Marks one of the seller's notifications read; again changes nothing.

    `known` says whether the seller's notification list has it (the caller looked):
    another seller's notification is not found.
    """
    if not known:
        raise NotificationNotFound(f"notification {notification_id} not found")
    existing = store.load(notification_read_id(notification_id), NotificationRead)
    if existing is not None:
        return Outcome(existing.id, None)
    mark = NotificationRead(
        notification_id=notification_id, seller_id=seller_id, read_at=store.clock.now()
    )
    try:
        return Outcome(mark.id, store.save(mark))
    except IntegrityError:  # marked by a concurrent request: the same outcome
        return Outcome(mark.id, None)


def mark_all_read(store: Store, seller_id: UUID, notification_ids: Sequence[UUID]) -> int | None:
    """Marks these notifications of the seller read in one write; returns its position
    (None when there was nothing to mark).

    The caller took the ids from the seller's own unread list. One marked meanwhile (by
    another tab) makes the write collide: then each is marked on its own, as `mark_read`.
    """
    now = store.clock.now()
    unique = list(dict.fromkeys(notification_ids))
    marks = [NotificationRead(notification_id=n, seller_id=seller_id, read_at=now) for n in unique]
    if not marks:
        return None
    try:
        return store.save(*marks)
    except IntegrityError:
        positions = [mark_read(store, seller_id, n, known=True).position for n in unique]
        return max((p for p in positions if p is not None), default=None)
