"""The developer console's reads of the webhooks read model (projections/webhook_deliveries.py):
the live subscriptions of a page of apps, each with its latest delivery, so a developer
sees at a glance whether a receiver is answering.

A page of apps costs one query for the subscriptions and one indexed look-up per
subscription (the newest row of `webhook_deliveries_log`), however long the logs are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.webhook_deliveries import deliveries, subscriptions


def webhooks_of_apps(conn: Connection, app_ids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """The live subscriptions of these apps (oldest first), each with `latest`: its newest
    delivery (event_type, status, created_at, delivered_at, last_status_code) or None."""
    found: dict[UUID, list[dict[str, Any]]] = {app_id: [] for app_id in app_ids}
    if not app_ids:
        return found
    c = subscriptions.c
    rows = conn.execute(
        sa.select(subscriptions)
        .where(c.app_id.in_(list(app_ids)), c.deleted_at.is_(None))
        .order_by(c.created_at, c.id)
    ).all()
    d = deliveries.c
    for row in rows:
        latest = conn.execute(
            sa.select(d.event_type, d.status, d.created_at, d.delivered_at, d.last_status_code)
            .where(d.webhook_id == row.id)
            .order_by(d.position.desc())
            .limit(1)
        ).first()
        found[row.app_id].append(
            {**row._mapping, "latest": None if latest is None else dict(latest._mapping)}
        )
    return found
