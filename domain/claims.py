"""Claims: tiny aggregates that make the event store enforce uniqueness.

A claim's id is derived from the unique key (an e-mail address, a slug, a seller × app pair,
a connector's event id), and it is saved in the same transaction as the change it guards.
Two writers racing for the same key both try to append version 1 (or the same next
version) of the same claim, and the event store's unique (id, version) key lets only one
commit: uniqueness without a read model and without a lock.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event


class EmailClaim(Aggregate):
    """Reserves an e-mail address for one account."""

    class Claimed(Aggregate.Created):
        email: str
        account_id: UUID

    @staticmethod
    def create_id(email: str) -> UUID:
        return email_claim_id(email)

    @event(Claimed)
    def __init__(self, email: str, account_id: UUID) -> None:
        self.email = email
        self.account_id = account_id


class SlugClaim(Aggregate):
    """Reserves a catalog slug for one app."""

    class Claimed(Aggregate.Created):
        slug: str
        app_id: UUID

    @staticmethod
    def create_id(slug: str) -> UUID:
        return slug_claim_id(slug)

    class Released(Aggregate.Event):
        """The app took another slug: this one is free again."""

    class Reclaimed(Aggregate.Event):
        app_id: UUID

    @event(Claimed)
    def __init__(self, slug: str, app_id: UUID) -> None:
        self.slug = slug
        self.app_id = app_id
        self.released = False

    @property
    def held(self) -> bool:
        return not self.released

    @event(Released)
    def release(self) -> None:
        self.released = True

    def reclaim(self, app_id: UUID) -> None:
        """A released slug taken again (by any app)."""
        if not self.released:
            raise ValueError("the slug is still held")
        self._reclaimed(app_id)

    @event(Reclaimed)
    def _reclaimed(self, app_id: UUID) -> None:
        self.app_id = app_id
        self.released = False


class InstallationSlot(Aggregate):
    """Points at the current installation of one app by one seller.

    Every install (and every comeback of an expired installation) moves the slot in the
    same transaction as the installation: one active installation per seller and app.
    `installation_ids` names every installation it ever pointed at, oldest first (what a
    seller did with an app, e.g. whether they may review it).
    """

    class Opened(Aggregate.Created):
        seller_id: UUID
        app_id: UUID

    class Claimed(Aggregate.Event):
        installation_id: UUID

    @staticmethod
    def create_id(seller_id: UUID, app_id: UUID) -> UUID:
        return installation_slot_id(seller_id, app_id)

    @event(Opened)
    def __init__(self, seller_id: UUID, app_id: UUID) -> None:
        self.seller_id = seller_id
        self.app_id = app_id
        self.installation_id: UUID | None = None
        self.installation_ids: list[UUID] = []

    @event(Claimed)
    def claim(self, installation_id: UUID) -> None:
        self.installation_id = installation_id
        if installation_id not in self.installation_ids:
            self.installation_ids.append(installation_id)


class SyncEventReceipt(Aggregate):
    """Marks a connector's sync event as applied, so a redelivery has no second effect."""

    class Received(Aggregate.Created):
        installation_id: UUID
        event_id: str
        received_at: datetime

    @staticmethod
    def create_id(installation_id: UUID, event_id: str) -> UUID:
        return sync_receipt_id(installation_id, event_id)

    @event(Received)
    def __init__(self, installation_id: UUID, event_id: str, received_at: datetime) -> None:
        self.installation_id = installation_id
        self.event_id = event_id
        self.received_at = received_at


def email_claim_id(email: str) -> UUID:
    """The id of the claim on a (lower-cased) e-mail address."""
    return uuid5(NAMESPACE_URL, f"appstore:email:{email.lower()}")


def slug_claim_id(slug: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:slug:{slug}")


def installation_slot_id(seller_id: UUID, app_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:slot:{seller_id}:{app_id}")


def sync_receipt_id(installation_id: UUID, event_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:sync:{installation_id}:{event_id}")
