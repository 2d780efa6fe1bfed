"""The developer console's reads: a developer's apps with their installations counted, and
the incidents of those apps' installations, from the my-apps and incidents read models.

Everything is keyed by the developer, so a console costs the same whatever the size of the
store, and a page of a developer with thousands of apps still reads one page of rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.incidents import incidents, item_of
from projections.my_apps import accounts, app_names, effective_status, installations, joined


def developer_apps(
    conn: Connection,
    developer_id: UUID,
    now: datetime,
    *,
    app_id: UUID | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """A page of a developer's apps by name, each with its live and all installations."""
    where = [app_names.c.developer_id == developer_id]
    if app_id is not None:
        where.append(app_names.c.app_id == app_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(app_names).where(*where))
    shown = (
        sa.select(app_names.c.app_id, app_names.c.slug, app_names.c.name)
        .where(*where)
        .order_by(app_names.c.name, app_names.c.app_id)
        .limit(page_size)
        .offset((page - 1) * page_size)
        .subquery()
    )
    live = sa.func.sum(sa.case((effective_status(now).in_(("active", "expiring")), 1), else_=0))
    rows = conn.execute(
        sa.select(
            shown.c.app_id,
            shown.c.slug,
            shown.c.name,
            sa.func.coalesce(live, 0).label("live"),
            sa.func.count(installations.c.id).label("installations"),
        )
        .select_from(shown.outerjoin(installations, installations.c.app_id == shown.c.app_id))
        .group_by(shown.c.app_id, shown.c.slug, shown.c.name)
        .order_by(shown.c.name, shown.c.app_id)
    )
    items = [
        {
            "id": r.app_id,
            "slug": r.slug,
            "name": r.name,
            "live": int(r.live),
            "installations": int(r.installations),
        }
        for r in rows
    ]
    return items, int(total.scalar_one())


def developer_app_names(
    conn: Connection, developer_id: UUID, limit: int = 1000
) -> list[dict[str, Any]]:
    """A developer's apps by name, id and name only (to choose one in a filter)."""
    rows = conn.execute(
        sa.select(app_names.c.app_id, app_names.c.name)
        .where(app_names.c.developer_id == developer_id)
        .order_by(app_names.c.name, app_names.c.app_id)
        .limit(limit)
    )
    return [{"id": r.app_id, "name": r.name} for r in rows]


def developer_incidents(
    conn: Connection,
    developer_id: UUID,
    *,
    app_id: UUID | None = None,
    status: str | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """Incidents of the installations of a developer's apps, most recently seen first, each
    with its app's name. No seller data: a developer sees what broke, not who it hit."""
    joined = incidents.join(app_names, app_names.c.app_id == incidents.c.app_id)
    where = [app_names.c.developer_id == developer_id]
    if app_id is not None:
        where.append(incidents.c.app_id == app_id)
    if status:
        where.append(incidents.c.status == status)
    total = conn.execute(sa.select(sa.func.count()).select_from(joined).where(*where))
    rows = conn.execute(
        sa.select(incidents, app_names.c.name.label("app_name"))
        .select_from(joined)
        .where(*where)
        .order_by(incidents.c.last_seen.desc(), incidents.c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    items = [{**item_of(r), "app_name": r.app_name} for r in rows]
    return items, int(total.scalar_one())


def developer_installations(
    conn: Connection,
    developer_id: UUID,
    now: datetime,
    *,
    app_id: UUID | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """Installations of a developer's apps; cancelled ones carry no seller data."""
    where = [installations.c.developer_id == developer_id]
    if app_id is not None:
        where.append(installations.c.app_id == app_id)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(installations).where(*where)
    ).scalar_one()
    rows = conn.execute(
        joined(now)
        .add_columns(accounts.c.name.label("seller_name"))
        .outerjoin(accounts, accounts.c.account_id == installations.c.seller_id)
        .where(*where)
        .order_by(installations.c.installed_at.desc(), installations.c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    items = []
    for r in rows:
        status = r.effective_status
        seller = None
        if status != "cancelled":
            seller = {
                "id": r.seller_id,
                "name": r.seller_name,
                "contact_email": r.contact_email,
                "contact_phone": r.contact_phone,
            }
        items.append(
            {
                "installation_id": r.id,
                "app": {"id": r.app_id, "slug": r.slug, "name": r.name},
                "status": "active" if status == "expiring" else status,
                "duration": r.duration,
                "scopes": list(r.scopes),
                "installed_at": r.installed_at,
                "authorized_at": r.authorized_at,
                "expires_at": r.expires_at,
                "seller": seller,
            }
        )
    return items, int(total)
