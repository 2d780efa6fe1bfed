"""Seller notifications and the e-mails that carry them, built from the event log.

An expiry warning (Installation.ExpiryWarned) becomes one notification for the seller
and one e-mail to the installation's contact address, both keyed by ids derived from the
event, in the same transaction as the tracking position. The e-mails are sent by the
dispatcher (application.dispatch, channel "email") when SMTP is configured; what happened
to each comes back from its Delivery events, so a rebuilt read model sends nothing again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from application.dispatch import DueDelivery
from domain.app_listing import AppListing
from domain.delivery import Delivery
from domain.installation import Installation
from domain.notification import (
    EXPIRY_WARNING,
    NotificationRead,
    email_id_for,
    expiry_warning_text,
    notification_id_for,
)
from domain.values import days_left
from projections.batch import Batch
from projections.db import UTCDateTime, metadata
from projections.projection import On, Projection, on

CHANNEL = "email"

apps = sa.Table(
    "notification_apps",
    metadata,
    sa.Column("app_id", sa.Uuid, primary_key=True),
    sa.Column("slug", sa.String(64), nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
)

installations = sa.Table(
    "notification_installations",
    metadata,
    sa.Column("installation_id", sa.Uuid, primary_key=True),
    sa.Column("seller_id", sa.Uuid, nullable=False),
    sa.Column("app_id", sa.Uuid, nullable=False),
    sa.Column("contact_email", sa.String(254), nullable=False),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("seller_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("installation_id", sa.Uuid, nullable=True),
    sa.Column("app_id", sa.Uuid, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("read_at", UTCDateTime, nullable=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("notifications_of_seller", "seller_id", "position"),
)

emails = sa.Table(
    "notification_emails",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("notification_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("to_address", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Index("notification_emails_due", "status", "next_attempt_at"),
)


class NotificationsProjection(Projection):
    """Notifications per seller, and their e-mails (an outbox the dispatcher empties)."""

    name = "notifications"
    replay_cost = 0.5  # apply time per event of the bench log, relative (see Projection)
    tables = (apps, installations, notifications, emails)

    def handlers(self) -> Sequence[On[Any]]:
        return [
            on(AppListing.Listed, self._listed),
            on(AppListing.Updated, self._updated),
            on(Installation.Installed, self._installed),
            on(Installation.ExpiryWarned, self._expiry_warned),
            on(NotificationRead.Marked, self._read),
            on(Delivery.Attempted, self._attempted),
            on(Delivery.Delivered, self._delivered),
            on(Delivery.Failed, self._failed),
            on(Delivery.Replayed, self._replayed),
        ]

    def _listed(self, batch: Batch, e: AppListing.Listed, position: int) -> None:
        batch.add(
            apps, {"app_id": e.originator_id, "slug": e.details["slug"], "name": e.details["name"]}
        )

    def _updated(self, batch: Batch, e: AppListing.Updated, position: int) -> None:
        changes = {k: e.changes[k] for k in ("slug", "name") if k in e.changes}
        if changes:
            batch.update(apps, e.originator_id, **changes)

    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        batch.add(
            installations,
            {
                "installation_id": e.originator_id,
                "seller_id": e.seller_id,
                "app_id": e.app_id,
                "contact_email": e.contact_email,
            },
        )

    def _expiry_warned(self, batch: Batch, e: Installation.ExpiryWarned, position: int) -> None:
        installation = batch.require(installations, e.originator_id)
        app = batch.require(apps, installation["app_id"])
        left = days_left(e.expires_at, e.warned_at) or e.days_before
        message = expiry_warning_text(app["name"], left, e.expires_at)
        notification_id = notification_id_for(e.originator_id, e.originator_version)
        batch.add(
            notifications,
            {
                "id": notification_id,
                "seller_id": installation["seller_id"],
                "kind": EXPIRY_WARNING,
                "installation_id": e.originator_id,
                "app_id": installation["app_id"],
                "message": message,
                "created_at": e.warned_at,
                "position": position,
            },
        )
        days = "1 day" if left == 1 else f"{left} days"
        batch.add(
            emails,
            {
                "id": email_id_for(notification_id),
                "notification_id": notification_id,
                "kind": EXPIRY_WARNING,
                "to_address": installation["contact_email"],
                "subject": f"{app['name']} expires in {days}: renew to keep it working"[:200],
                "body": message,
                "created_at": e.warned_at,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": e.warned_at,
            },
        )

    def _read(self, batch: Batch, e: NotificationRead.Marked, position: int) -> None:
        if batch.get(notifications, e.notification_id) is not None:
            batch.update(notifications, e.notification_id, read_at=e.read_at)

    # --- what happened to the e-mails -------------------------------------------------------
    def _mine(self, e: Any) -> bool:
        return bool(e.channel == CHANNEL)

    def _attempted(self, batch: Batch, e: Delivery.Attempted, position: int) -> None:
        if self._mine(e):
            batch.update(
                emails,
                e.originator_id,
                attempts=e.attempt,
                last_error=e.error,
                next_attempt_at=e.next_attempt_at,
            )

    def _delivered(self, batch: Batch, e: Delivery.Delivered, position: int) -> None:
        if self._mine(e):
            batch.update(
                emails,
                e.originator_id,
                status="succeeded",
                attempts=e.attempt,
                sent_at=e.delivered_at,
            )

    def _failed(self, batch: Batch, e: Delivery.Failed, position: int) -> None:
        if self._mine(e):
            batch.update(
                emails, e.originator_id, status="failed", attempts=e.attempt, last_error=e.error
            )

    def _replayed(self, batch: Batch, e: Delivery.Replayed, position: int) -> None:
        if self._mine(e):
            batch.update(emails, e.originator_id, status="pending", next_attempt_at=e.requested_at)


# --- queries -------------------------------------------------------------------------------------
def _item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "installation_id": row.installation_id,
        "app": None
        if row.app_id is None
        else {"id": row.app_id, "slug": row.slug, "name": row.name},
        "message": row.message,
        "created_at": row.created_at,
        "read": row.read_at is not None,
        "read_at": row.read_at,
    }


def _joined() -> sa.Select[Any]:
    return sa.select(notifications, apps.c.slug, apps.c.name).select_from(
        notifications.outerjoin(apps, apps.c.app_id == notifications.c.app_id)
    )


def seller_notifications(
    conn: Connection,
    seller_id: UUID,
    *,
    unread: bool = False,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int, int]:
    """A seller's notifications, newest first; with the number unread."""
    c = notifications.c
    where = [c.seller_id == seller_id]
    if unread:
        where.append(c.read_at.is_(None))
    total = conn.execute(sa.select(sa.func.count()).select_from(notifications).where(*where))
    total_count = int(total.scalar_one())
    unread_total = unread_count(conn, seller_id)
    rows = conn.execute(
        _joined()
        .where(*where)
        .order_by(c.position.desc(), c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return [_item(r) for r in rows], total_count, unread_total


def unread_count(conn: Connection, seller_id: UUID) -> int:
    """How many of the seller's notifications are unread (the pages' header shows it)."""
    c = notifications.c
    found = conn.execute(
        sa.select(sa.func.count())
        .select_from(notifications)
        .where(c.seller_id == seller_id, c.read_at.is_(None))
    )
    return int(found.scalar_one())


def notification_of(
    conn: Connection, seller_id: UUID, notification_id: UUID
) -> dict[str, Any] | None:
    """One of the seller's notifications, or None (another seller's too)."""
    c = notifications.c
    row = conn.execute(_joined().where(c.id == notification_id, c.seller_id == seller_id)).first()
    return None if row is None else _item(row)


def emails_of(conn: Connection, notification_id: UUID) -> list[dict[str, Any]]:
    """The e-mails that carry a notification (with what happened to them)."""
    rows = conn.execute(sa.select(emails).where(emails.c.notification_id == notification_id))
    return [dict(r._mapping) for r in rows]


class EmailOutbox:
    """The e-mails due for an attempt, for the dispatcher (application.dispatch)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due(self, now: datetime, limit: int) -> list[DueDelivery]:
        c = emails.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(emails)
                .where(c.status == "pending", c.next_attempt_at <= now)
                .order_by(c.next_attempt_at, c.id)
                .limit(limit)
            ).all()
        return [
            DueDelivery(
                r.id,
                r.attempts,
                r.created_at,
                r.notification_id,
                r.kind,
                json.dumps({"to": r.to_address, "subject": r.subject, "body": r.body}),
                r.next_attempt_at,
            )
            for r in rows
        ]
