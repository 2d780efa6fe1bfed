"""The developer console's list of apps: each of a developer's apps with its installations
counted (from the my-apps read model's tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.my_apps import app_names, effective_status, installations


def developer_apps(conn: Connection, developer_id: UUID, now: datetime) -> list[dict[str, Any]]:
    """A developer's apps by name, each with how many installations are live now."""
    live = sa.func.sum(sa.case((effective_status(now).in_(("active", "expiring")), 1), else_=0))
    rows = conn.execute(
        sa.select(
            app_names.c.app_id,
            app_names.c.slug,
            app_names.c.name,
            sa.func.coalesce(live, 0).label("live"),
            sa.func.count(installations.c.id).label("installations"),
        )
        .select_from(
            app_names.outerjoin(installations, installations.c.app_id == app_names.c.app_id)
        )
        .where(app_names.c.developer_id == developer_id)
        .group_by(app_names.c.app_id, app_names.c.slug, app_names.c.name)
        .order_by(app_names.c.name, app_names.c.app_id)
    )
    return [
        {
            "id": r.app_id,
            "slug": r.slug,
            "name": r.name,
            "live": int(r.live),
            "installations": int(r.installations),
        }
        for r in rows
    ]
