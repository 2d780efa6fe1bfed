"""The seller's notifications: marking one read (the list itself is a read model)."""

from __future__ import annotations

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
