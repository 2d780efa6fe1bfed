"""Webhook subscriptions and their delivery log, built from the event log exactly once.

Each event that matches a subscription (see projections/webhook_topics.py) becomes ONE
delivery row, keyed by (subscription, event position), written in the same transaction
as the tracking position: a crash neither loses nor doubles one. What then happened to a
delivery comes from its Delivery events (appended by the dispatcher), so a rebuilt read
model shows the same log, and the dispatcher, which asks the Delivery aggregate before
sending, sends nothing again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from application.dispatch import DueDelivery
from domain.delivery import Delivery
from domain.installation import Installation
from domain.review import Review
from domain.webhook import TEST_TOPIC, Webhook, delivery_id_for
from projections.batch import Batch
from projections.db import UTCDateTime, metadata
from projections.projection import On, Projection, on
from projections.webhook_topics import TOPIC_EVENTS, Topic, installation_changes, ping_data

CHANNEL = "webhook"
# Pending deliveries a projection step reads in one go when it meets delivery attempts.
PREFETCH = 2000

subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("app_id", sa.Uuid, nullable=False, index=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("secret_rotated_at", UTCDateTime, nullable=True),
    sa.Column("previous_secret_until", UTCDateTime, nullable=True),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
)

# What payloads say about installations (their events do not repeat it).
installations = sa.Table(
    "webhook_installations",
    metadata,
    sa.Column("installation_id", sa.Uuid, primary_key=True),
    sa.Column("app_id", sa.Uuid, nullable=False),
    sa.Column("seller_id", sa.Uuid, nullable=False),
    sa.Column("duration", sa.String(16), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
)

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("webhook_id", sa.Uuid, nullable=False),
    sa.Column("app_id", sa.Uuid, nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Index("webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("webhook_deliveries_log", "webhook_id", "position"),
)


class WebhookDeliveriesProjection(Projection):
    """Subscriptions, the installations payloads describe, and one row per delivery."""

    name = "webhook_deliveries"
    replay_cost = 1.4  # apply time per event of the bench log, relative (see Projection)
    tables = (subscriptions, installations, deliveries)
    # 2: the installations' scopes follow consent (authorized, granted, revoked).
    version = 2

    def handlers(self) -> Sequence[On[Any]]:
        return [
            on(Webhook.Created, self._created),
            on(Webhook.Changed, self._changed),
            on(Webhook.SecretRotated, self._rotated),
            on(Webhook.Deleted, self._deleted),
            on(Webhook.TestRequested, self._test_requested),
            on(Installation.Installed, self._installed),
            *(on(topic.event, self._topic_handler(topic)) for topic in TOPIC_EVENTS),
            on(Delivery.Started, self._claimed),
            on(Delivery.Claimed, self._claimed),
            on(Delivery.Attempted, self._attempted),
            on(Delivery.Delivered, self._delivered),
            on(Delivery.Failed, self._failed),
            on(Delivery.Replayed, self._replayed),
        ]

    def prepare(self, batch: Batch, events: Sequence[Any]) -> None:
        """The installations and the apps' subscriptions the events need: two round trips."""
        installed = {e.originator_id for e in events if isinstance(e, Installation.Installed)}
        ids = {e.originator_id for e in events if isinstance(e, Installation.Event)}
        apps = {row["app_id"] for row in batch.get_many(installations, ids - installed)}
        kinds = Installation.Installed | Review.Posted | Webhook.Created
        self._load_webhooks(batch, apps | {e.app_id for e in events if isinstance(e, kinds)})

    # --- subscriptions ------------------------------------------------------------------------
    def _created(self, batch: Batch, e: Webhook.Created, position: int) -> None:
        batch.add(
            subscriptions,
            {
                "id": e.originator_id,
                "app_id": e.app_id,
                "url": e.url,
                "topics": list(e.topics),
                "created_at": e.created_at,
                "updated_at": e.created_at,
            },
        )
        webhooks = self._webhooks_of(batch, e.app_id)
        if e.originator_id not in webhooks:
            webhooks.append(e.originator_id)

    def _changed(self, batch: Batch, e: Webhook.Changed, position: int) -> None:
        batch.update(
            subscriptions,
            e.originator_id,
            url=e.url,
            topics=list(e.topics),
            updated_at=e.changed_at,
        )

    def _rotated(self, batch: Batch, e: Webhook.SecretRotated, position: int) -> None:
        batch.update(
            subscriptions,
            e.originator_id,
            secret_rotated_at=e.rotated_at,
            previous_secret_until=e.previous_until,
            updated_at=e.rotated_at,
        )

    def _deleted(self, batch: Batch, e: Webhook.Deleted, position: int) -> None:
        batch.update(subscriptions, e.originator_id, deleted_at=e.deleted_at)

    def _webhooks_of(self, batch: Batch, app_id: UUID) -> list[UUID]:
        """The subscription ids of an app (read once per batch, then kept up to date)."""
        self._load_webhooks(batch, [app_id])
        found: list[UUID] = batch.extra["webhooks_by_app"][app_id]
        return found

    def _load_webhooks(self, batch: Batch, app_ids: Iterable[UUID]) -> None:
        by_app: dict[Any, Any] = batch.extra.setdefault("webhooks_by_app", {})
        wanted = [a for a in app_ids if a not in by_app]
        for i in range(0, len(wanted), 1000):
            by_app.update((a, []) for a in wanted[i : i + 1000])
            for row in batch.prefetch_among(subscriptions, "app_id", wanted[i : i + 1000]):
                by_app[row["app_id"]].append(row["id"])

    # --- deliveries ---------------------------------------------------------------------------
    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        batch.add(
            installations,
            {
                "installation_id": e.originator_id,
                "app_id": e.app_id,
                "seller_id": e.seller_id,
                "duration": str(e.duration),
                "scopes": list(e.scopes),
            },
        )

    def _topic_handler(self, topic: Topic) -> Any:
        def handle(batch: Batch, e: Any, position: int) -> None:
            installation = None
            if isinstance(e, Installation.Event):
                installation = batch.get(installations, e.originator_id)
                if installation is None:
                    return  # written before this read model knew installations: nothing to say
                changes = installation_changes(e, installation)
                if changes:
                    installation = batch.update(installations, e.originator_id, **changes)
            # The payload is made only for an app that has a subscription to it (most have
            # none); an installation's app is the one its topics name.
            data = None if installation is not None else topic.data(e, installation)
            named = installation if data is None else {"app_id": UUID(data["app_id"])}
            assert named is not None
            app_id: UUID = named["app_id"]  # a sa.Uuid column: a UUID
            for webhook_id in self._webhooks_of(batch, app_id):
                webhook = batch.require(subscriptions, webhook_id)
                if webhook["deleted_at"] is None and topic.name in webhook["topics"]:
                    data = data or topic.data(e, installation)
                    when: datetime = getattr(e, topic.at)
                    self._deliver(batch, webhook_id, app_id, topic.name, data, position, when)

        return handle

    def _test_requested(self, batch: Batch, e: Webhook.TestRequested, position: int) -> None:
        webhook = batch.require(subscriptions, e.originator_id)
        data = ping_data(e.originator_id, webhook["app_id"])
        self._deliver(
            batch, e.originator_id, webhook["app_id"], TEST_TOPIC, data, position, e.requested_at
        )

    def _deliver(
        self,
        batch: Batch,
        webhook_id: UUID,
        app_id: UUID,
        event_type: str,
        data: dict[str, Any],
        position: int,
        created_at: datetime,
    ) -> None:
        batch.add(
            deliveries,
            {
                "id": delivery_id_for(webhook_id, position),
                "webhook_id": webhook_id,
                "app_id": app_id,
                "event_type": event_type,
                "payload": data,
                "position": position,
                "created_at": created_at,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": created_at,
            },
        )

    # --- what happened to them (`attempts` counts finished attempts) ------------------------------------------------------------------
    def _mine(self, batch: Batch, e: Any) -> dict[str, Any] | None:
        if e.channel != CHANNEL:
            return None
        if "prefetched" not in batch.extra:
            # The attempts of a step are mostly of the earliest-due pending deliveries:
            # read those at once rather than one round trip per event.
            batch.extra["prefetched"] = {}
            c = deliveries.c
            batch.prefetch(
                deliveries,
                sa.select(deliveries)
                .where(c.status == "pending")
                .order_by(c.next_attempt_at)
                .limit(PREFETCH),
            )
        return batch.get(deliveries, e.originator_id)

    def _claimed(self, batch: Batch, e: Delivery.Started | Delivery.Claimed, position: int) -> None:
        # In flight: not due again before its lease ends (other dispatchers skip it).
        if self._mine(batch, e) is not None:
            batch.update(deliveries, e.originator_id, next_attempt_at=e.lease_until)

    def _attempted(self, batch: Batch, e: Delivery.Attempted, position: int) -> None:
        if self._mine(batch, e) is not None:
            batch.update(
                deliveries,
                e.originator_id,
                attempts=e.attempt,
                last_status_code=e.status_code,
                last_error=e.error,
                latency_ms=e.latency_ms,
                next_attempt_at=e.next_attempt_at,
            )

    def _delivered(self, batch: Batch, e: Delivery.Delivered, position: int) -> None:
        if self._mine(batch, e) is not None:
            batch.update(
                deliveries,
                e.originator_id,
                status="succeeded",
                attempts=e.attempt,
                last_status_code=e.status_code,
                last_error=None,
                latency_ms=e.latency_ms,
                delivered_at=e.delivered_at,
            )

    def _failed(self, batch: Batch, e: Delivery.Failed, position: int) -> None:
        if self._mine(batch, e) is not None:
            batch.update(
                deliveries,
                e.originator_id,
                status="failed",
                attempts=e.attempt,
                last_status_code=e.status_code,
                last_error=e.error,
                latency_ms=e.latency_ms,
            )

    def _replayed(self, batch: Batch, e: Delivery.Replayed, position: int) -> None:
        if self._mine(batch, e) is not None:
            batch.update(
                deliveries, e.originator_id, status="pending", next_attempt_at=e.requested_at
            )


# --- queries -------------------------------------------------------------------------------------
def webhooks_of_app(conn: Connection, app_id: UUID) -> list[dict[str, Any]]:
    """An app's live subscriptions, oldest first."""
    c = subscriptions.c
    rows = conn.execute(
        sa.select(subscriptions)
        .where(c.app_id == app_id, c.deleted_at.is_(None))
        .order_by(c.created_at, c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def webhook_of(conn: Connection, app_id: UUID, webhook_id: UUID) -> dict[str, Any] | None:
    """One live subscription of the app, or None."""
    c = subscriptions.c
    row = conn.execute(
        sa.select(subscriptions).where(
            c.id == webhook_id, c.app_id == app_id, c.deleted_at.is_(None)
        )
    ).first()
    return None if row is None else dict(row._mapping)


def delivery_log(
    conn: Connection,
    webhook_id: UUID,
    *,
    status: str | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """A subscription's deliveries, newest first."""
    c = deliveries.c
    where = [c.webhook_id == webhook_id]
    if status:
        where.append(c.status == status)
    total = conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(*where))
    rows = conn.execute(
        sa.select(deliveries)
        .where(*where)
        .order_by(c.position.desc(), c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return [dict(r._mapping) for r in rows], int(total.scalar_one())


def delivery_of(conn: Connection, webhook_id: UUID, delivery_id: UUID) -> dict[str, Any] | None:
    """One delivery of the subscription, or None."""
    c = deliveries.c
    row = conn.execute(
        sa.select(deliveries).where(c.id == delivery_id, c.webhook_id == webhook_id)
    ).first()
    return None if row is None else dict(row._mapping)


class WebhookDeliveries:
    """The deliveries due for an attempt, for the dispatcher (application.dispatch)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due(self, now: datetime, limit: int) -> list[DueDelivery]:
        c = deliveries.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    c.id,
                    c.attempts,
                    c.created_at,
                    c.webhook_id,
                    c.event_type,
                    sa.cast(c.payload, sa.Text).label("payload"),
                    c.next_attempt_at,
                )
                .where(c.status == "pending", c.next_attempt_at <= now)
                .order_by(c.next_attempt_at, c.position)
                .limit(limit)
            ).all()
        return [
            DueDelivery(
                r.id,
                r.attempts,
                r.created_at,
                r.webhook_id,
                r.event_type,
                r.payload,
                r.next_attempt_at,
            )
            for r in rows
        ]
