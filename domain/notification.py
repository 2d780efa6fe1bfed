"""Seller notifications: what the store tells a seller (today: that an app will expire).

Notifications themselves are a read model made from events (an ExpiryWarned becomes one);
what a seller does with them is recorded here: `NotificationRead` is a claim-like
aggregate whose id derives from the notification, so marking one read twice changes
nothing and needs no lock.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

EXPIRY_WARNING = "expiry_warning"


class NotificationRead(Aggregate):
    """A seller has read one notification."""

    class Marked(Aggregate.Created):
        notification_id: UUID
        seller_id: UUID
        read_at: datetime

    @staticmethod
    def create_id(notification_id: UUID) -> UUID:
        return notification_read_id(notification_id)

    @event(Marked)
    def __init__(self, notification_id: UUID, seller_id: UUID, read_at: datetime) -> None:
        self.notification_id = notification_id
        self.seller_id = seller_id
        self.read_at = read_at


def notification_id_for(aggregate_id: UUID, version: int) -> UUID:
    """The notification made from one event (an aggregate's version): stable on replay."""
    return uuid5(NAMESPACE_URL, f"appstore:notification:{aggregate_id}:{version}")


def notification_read_id(notification_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:notification-read:{notification_id}")


def email_id_for(notification_id: UUID) -> UUID:
    """The e-mail that carries a notification (one per notification)."""
    return uuid5(NAMESPACE_URL, f"appstore:email:{notification_id}")


def expiry_warning_text(app_name: str, days_left: int, expires_at: datetime) -> str:
    """What the seller reads (in the list and in the e-mail)."""
    days = "1 day" if days_left == 1 else f"{days_left} days"
    return (
        f"Your authorization of {app_name} expires in {days}, on "
        f"{expires_at:%d %B %Y at %H:%M} UTC. Renew it in My apps to keep the app working."
    )
