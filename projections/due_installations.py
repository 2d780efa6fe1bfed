"""What time has decided and the expiry sweep must record (application/expiry.py):
installations past their expiry, pending ones whose authorization window passed, and those
due an expiry warning. Read from the my-apps read model."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from domain.installation import AUTHORIZATION_WINDOW
from domain.values import EXPIRY_WARNING_DAYS
from projections.my_apps import installations


def due_for_expiry(conn: Connection, now: datetime, limit: int = 500) -> list[UUID]:
    """Active installations past their expiry (the sweeper appends Expired for them)."""
    c = installations.c
    rows = conn.execute(
        sa.select(c.id)
        .where(c.status == "active", c.expires_at.is_not(None), c.expires_at <= now)
        .limit(limit)
    )
    return [r[0] for r in rows]


def due_for_lapse(conn: Connection, now: datetime, limit: int = 500) -> list[UUID]:
    """Pending installations whose authorization window passed."""
    c = installations.c
    rows = conn.execute(
        sa.select(c.id)
        .where(c.status == "pending_authorization", c.installed_at < now - AUTHORIZATION_WINDOW)
        .limit(limit)
    )
    return [r[0] for r in rows]


def due_for_warning(conn: Connection, now: datetime, limit: int = 500) -> list[UUID]:
    """Active installations past an expiry-warning threshold not yet warned of."""
    c = installations.c
    # The most urgent threshold passed now (see domain.values.expiry_warning_due).
    passed = sa.case(
        *((c.expires_at <= now + timedelta(days=d), d) for d in sorted(EXPIRY_WARNING_DAYS)),
        else_=None,
    )
    rows = conn.execute(
        sa.select(c.id)
        .where(
            c.status == "active",
            c.expires_at > now,
            c.expires_at <= now + timedelta(days=max(EXPIRY_WARNING_DAYS)),
            sa.or_(c.warned_days.is_(None), c.warned_days > passed),
        )
        .order_by(c.expires_at)
        .limit(limit)
    )
    return [r[0] for r in rows]


class DueInstallations:
    """What the expiry sweep must record, read from this read model (application.expiry)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due_for_expiry(self, now: datetime) -> list[UUID]:
        with self.engine.connect() as conn:
            return due_for_expiry(conn, now)

    def due_for_lapse(self, now: datetime) -> list[UUID]:
        with self.engine.connect() as conn:
            return due_for_lapse(conn, now)

    def due_for_warning(self, now: datetime) -> list[UUID]:
        with self.engine.connect() as conn:
            return due_for_warning(conn, now)
