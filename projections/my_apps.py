"""Installations as sellers see them (my apps) and as developers see them.

Status in answers is computed against the current time as well: an active installation
past its expiry shows `expired` before the sweeper records it, one expiring within 14 days
shows `expiring`, and a pending one past the authorization window shows `declined`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.account import Account
from domain.app_listing import AppListing
from domain.consent import in_scope_order
from domain.installation import AUTHORIZATION_WINDOW, Installation
from domain.values import EXPIRING_WITHIN, days_left
from projections.batch import Batch
from projections.db import UTCDateTime, metadata
from projections.projection import On, Projection, on

# A status as my-apps lists show it: the installation's, or `expiring` within 14 days.
MyAppsStatus = Literal[
    "active", "expiring", "expired", "cancelled", "pending_authorization", "declined"
]

app_names = sa.Table(
    "my_apps_apps",
    metadata,
    sa.Column("app_id", sa.Uuid, primary_key=True),
    sa.Column("slug", sa.String(64), nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("developer_id", sa.Uuid, nullable=False),
)

accounts = sa.Table(
    "my_apps_accounts",
    metadata,
    sa.Column("account_id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
)

installations = sa.Table(
    "my_apps_installations",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("app_id", sa.Uuid, nullable=False, index=True),
    sa.Column("seller_id", sa.Uuid, nullable=False, index=True),
    sa.Column("developer_id", sa.Uuid, nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("duration", sa.String(16), nullable=False),
    sa.Column("contact_email", sa.String(254), nullable=False),
    sa.Column("contact_phone", sa.String(32), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("via", sa.String(32), nullable=False),
    sa.Column("installed_at", UTCDateTime, nullable=False),
    sa.Column("authorized_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True, index=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("end_reason", sa.String(32), nullable=True),
    sa.Column("open_incidents", sa.Integer, nullable=False, default=0),
    # The most urgent expiry warning recorded for the current expiry (days before it).
    sa.Column("warned_days", sa.Integer, nullable=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


class MyAppsProjection(Projection):
    """Builds the installation list from Installation, AppListing and Account events."""

    name = "my_apps"
    replay_cost = 1.5  # apply time per event of the bench log, relative (see Projection)
    tables = (app_names, accounts, installations)

    def handlers(self) -> Sequence[On[Any]]:
        return [
            on(Account.Registered, self._registered),
            on(AppListing.Listed, self._listed),
            on(AppListing.Updated, self._updated),
            on(Installation.Installed, self._installed),
            on(Installation.Authorized, self._authorized),
            on(Installation.ScopesGranted, self._scopes_granted),
            on(Installation.ScopeRevoked, self._scope_revoked),
            on(Installation.Declined, self._declined),
            on(Installation.Renewed, self._renewed),
            on(Installation.Cancelled, self._cancelled),
            on(Installation.Expired, self._expired),
            on(Installation.ExpiryWarned, self._expiry_warned),
            on(Installation.IncidentRaised, self._incident_raised),
            on(Installation.IncidentResolved, self._incident_resolved),
        ]

    def prepare(self, batch: Batch, events: Sequence[Any]) -> None:
        """The installations and app names the events need that earlier steps wrote: one
        round trip each (those the events create are not asked for)."""
        installed = {
            e.originator_id: e.app_id for e in events if isinstance(e, Installation.Installed)
        }
        ids = {e.originator_id for e in events if isinstance(e, Installation.Event)}
        batch.get_many(installations, ids - installed.keys())
        listed = {e.originator_id for e in events if isinstance(e, AppListing.Listed)}
        batch.get_many(app_names, set(installed.values()) - listed)

    def _registered(self, batch: Batch, e: Account.Registered, position: int) -> None:
        batch.add(accounts, {"account_id": e.originator_id, "name": e.name, "email": e.email})

    def _listed(self, batch: Batch, e: AppListing.Listed, position: int) -> None:
        batch.add(
            app_names,
            {
                "app_id": e.originator_id,
                "slug": e.details["slug"],
                "name": e.details["name"],
                "developer_id": e.developer_id,
            },
        )

    def _updated(self, batch: Batch, e: AppListing.Updated, position: int) -> None:
        changes = {k: e.changes[k] for k in ("slug", "name") if k in e.changes}
        if changes:
            batch.update(app_names, e.originator_id, **changes)

    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        app = batch.require(app_names, e.app_id)
        batch.add(
            installations,
            {
                "id": e.originator_id,
                "app_id": e.app_id,
                "seller_id": e.seller_id,
                "developer_id": app["developer_id"],
                "status": "pending_authorization",
                "duration": str(e.duration),
                "contact_email": e.contact_email,
                "contact_phone": e.contact_phone,
                "scopes": list(e.scopes),
                "via": e.via,
                "installed_at": e.installed_at,
                "open_incidents": 0,
                "position": position,
            },
        )

    def _set(self, batch: Batch, e: Installation.Event, position: int, **values: Any) -> None:
        batch.update(installations, e.originator_id, position=position, **values)

    def _authorized(self, batch: Batch, e: Installation.Authorized, position: int) -> None:
        # Events stored before consent per scope carry no scopes: all asked were granted.
        granted = {} if e.scopes is None else {"scopes": list(e.scopes)}
        self._set(
            batch,
            e,
            position,
            status="active",
            authorized_at=e.authorized_at,
            expires_at=e.expires_at,
            **granted,
        )

    def _scopes_granted(self, batch: Batch, e: Installation.ScopesGranted, position: int) -> None:
        row = batch.require(installations, e.originator_id)
        self._set(batch, e, position, scopes=in_scope_order([*row["scopes"], *e.scopes]))

    def _scope_revoked(self, batch: Batch, e: Installation.ScopeRevoked, position: int) -> None:
        row = batch.require(installations, e.originator_id)
        self._set(batch, e, position, scopes=[s for s in row["scopes"] if s != e.scope])

    def _declined(self, batch: Batch, e: Installation.Declined, position: int) -> None:
        self._set(
            batch, e, position, status="declined", ended_at=e.declined_at, end_reason=e.reason
        )

    def _renewed(self, batch: Batch, e: Installation.Renewed, position: int) -> None:
        self._set(
            batch,
            e,
            position,
            status="active",
            duration=str(e.duration),
            expires_at=e.expires_at,
            ended_at=None,
            end_reason=None,
            warned_days=None,
        )

    def _cancelled(self, batch: Batch, e: Installation.Cancelled, position: int) -> None:
        self._set(
            batch, e, position, status="cancelled", ended_at=e.cancelled_at, end_reason=e.reason
        )

    def _expired(self, batch: Batch, e: Installation.Expired, position: int) -> None:
        self._set(batch, e, position, status="expired", ended_at=e.expired_at, end_reason="expired")

    def _expiry_warned(self, batch: Batch, e: Installation.ExpiryWarned, position: int) -> None:
        self._set(batch, e, position, warned_days=e.days_before)

    def _incident_raised(self, batch: Batch, e: Installation.IncidentRaised, position: int) -> None:
        row = batch.require(installations, e.originator_id)
        self._set(batch, e, position, open_incidents=row["open_incidents"] + 1)

    def _incident_resolved(
        self, batch: Batch, e: Installation.IncidentResolved, position: int
    ) -> None:
        row = batch.require(installations, e.originator_id)
        self._set(batch, e, position, open_incidents=row["open_incidents"] - 1)


# --- queries ---------------------------------------------------------------------------
def effective_status(now: datetime) -> sa.ColumnElement[str]:
    """The SQL expression of an installation's status as of `now` (see module docstring)."""
    return _status_as_of(now, now + EXPIRING_WITHIN, now - AUTHORIZATION_WINDOW)


def _status_as_of(now: Any, expiring_by: Any, declined_before: Any) -> sa.ColumnElement[str]:
    c = installations.c
    return sa.case(
        (sa.and_(c.status == "active", c.expires_at.is_not(None), c.expires_at <= now), "expired"),
        (
            sa.and_(
                c.status == "active",
                c.expires_at.is_not(None),
                c.expires_at <= expiring_by,
            ),
            "expiring",
        ),
        (
            sa.and_(
                c.status == "pending_authorization",
                c.installed_at < declined_before,
            ),
            "declined",
        ),
        else_=c.status,
    )


def _my_app_item(row: Any, now: datetime) -> dict[str, Any]:
    status = row.effective_status
    live = status in ("active", "expiring")
    return {
        "installation_id": row.id,
        "app": {"id": row.app_id, "slug": row.slug, "name": row.name},
        "status": status,
        "duration": row.duration,
        "scopes": list(row.scopes),
        "authorized_at": row.authorized_at,
        "expires_at": row.expires_at,
        "days_left": days_left(row.expires_at, now) if live else None,
        "open_incidents": row.open_incidents,
    }


def joined(now: datetime) -> sa.Select[Any]:
    """Installations with their app's slug and name and their status as of `now`."""
    return sa.select(
        installations,
        app_names.c.slug,
        app_names.c.name,
        effective_status(now).label("effective_status"),
    ).select_from(installations.join(app_names, app_names.c.app_id == installations.c.app_id))


def _my_apps_statements(with_status: bool) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """(count, page) of a seller's installations, with bound parameters: built once, so
    SQLAlchemy computes each statement's cache key once, not on every request (it was a
    third of the CPU of GET /v1/me/apps)."""
    status = _status_as_of(
        sa.bindparam("now", type_=UTCDateTime()),
        sa.bindparam("expiring_by", type_=UTCDateTime()),
        sa.bindparam("declined_before", type_=UTCDateTime()),
    )
    where = [
        installations.c.seller_id == sa.bindparam("seller_id", type_=sa.Uuid()),
        status == sa.bindparam("status", type_=sa.String())
        if with_status
        else status != "declined",
    ]
    count = sa.select(sa.func.count()).select_from(installations).where(*where)
    page = (
        sa.select(
            installations, app_names.c.slug, app_names.c.name, status.label("effective_status")
        )
        .select_from(installations.join(app_names, app_names.c.app_id == installations.c.app_id))
        .where(*where)
        .order_by(
            installations.c.expires_at.is_(None),
            installations.c.expires_at,
            app_names.c.name,
            installations.c.id,
        )
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .offset(sa.bindparam("offset", type_=sa.Integer()))
    )
    return count, page


_MY_APPS = {with_status: _my_apps_statements(with_status) for with_status in (False, True)}


def my_apps(
    conn: Connection,
    seller_id: UUID,
    now: datetime,
    *,
    status: str | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """A seller's installations (soonest expiry first); without `status`, all but declined."""
    count, paged = _MY_APPS[bool(status)]
    params: dict[str, Any] = {
        "seller_id": seller_id,
        "now": now,
        "expiring_by": now + EXPIRING_WITHIN,
        "declined_before": now - AUTHORIZATION_WINDOW,
        "limit": page_size,
        "offset": (page - 1) * page_size,
    }
    if status:
        params["status"] = status
    total = conn.execute(count, params).scalar_one()
    rows = conn.execute(paged, params).all()
    return [_my_app_item(r, now) for r in rows], int(total)


def status_counts(conn: Connection, seller_id: UUID, now: datetime) -> dict[str, int]:
    """How many of a seller's installations have each status as of `now`."""
    status = effective_status(now).label("status")
    rows = conn.execute(
        sa.select(status, sa.func.count())
        .where(installations.c.seller_id == seller_id)
        .group_by(status)
    )
    return {row[0]: int(row[1]) for row in rows}


def last_contact(conn: Connection, seller_id: UUID) -> tuple[str, str] | None:
    """The contact e-mail and phone of the seller's latest installation, to offer again."""
    row = conn.execute(
        sa.select(installations.c.contact_email, installations.c.contact_phone)
        .where(installations.c.seller_id == seller_id)
        .order_by(installations.c.installed_at.desc(), installations.c.id)
        .limit(1)
    ).first()
    return None if row is None else (row.contact_email, row.contact_phone)


def installation_of(conn: Connection, installation_id: UUID, now: datetime) -> Any | None:
    """The installation row with its app's name and slug, or None."""
    return conn.execute(joined(now).where(installations.c.id == installation_id)).first()
