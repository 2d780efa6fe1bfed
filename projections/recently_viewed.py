"""Per-seller recently viewed apps.

Ephemeral UI state, not business history: the API writes it straight to this table
instead of appending events (it is not rebuilt by replay and survives it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from projections import catalog, catalog_search
from projections.db import UTCDateTime, metadata

KEEP = 20

views = sa.Table(
    "recently_viewed",
    metadata,
    sa.Column("seller_id", sa.Uuid, primary_key=True),
    sa.Column("app_id", sa.Uuid, primary_key=True),
    sa.Column("viewed_at", UTCDateTime, nullable=False),
)


def create(conn: Connection) -> None:
    views.create(conn, checkfirst=True)


def remember(engine: Engine, seller_id: UUID, app_id: UUID, now: datetime) -> None:
    """Records a view (deduplicated by app) and keeps only the newest KEEP per seller."""
    with engine.begin() as conn:
        updated = conn.execute(
            views.update()
            .where(views.c.seller_id == seller_id, views.c.app_id == app_id)
            .values(viewed_at=now)
        )
        if updated.rowcount == 0:
            conn.execute(views.insert().values(seller_id=seller_id, app_id=app_id, viewed_at=now))
        keep = (
            sa.select(views.c.app_id)
            .where(views.c.seller_id == seller_id)
            .order_by(views.c.viewed_at.desc(), views.c.app_id)
            .limit(KEEP)
        )
        conn.execute(
            views.delete().where(views.c.seller_id == seller_id, views.c.app_id.not_in(keep))
        )


def recently_viewed(conn: Connection, seller_id: UUID, limit: int = KEEP) -> list[dict[str, Any]]:
    """The seller's viewed apps that are still listed, most recent first."""
    apps = catalog.apps
    rows = conn.execute(
        sa.select(apps, views.c.viewed_at)
        .select_from(views.join(apps, apps.c.id == views.c.app_id))
        .where(views.c.seller_id == seller_id, apps.c.delisted_at.is_(None))
        .order_by(views.c.viewed_at.desc(), apps.c.id)
        .limit(limit)
    ).all()
    return [{**catalog_search.item_of(r), "viewed_at": r.viewed_at} for r in rows]
