"""Incidents per seller and installation: open, acknowledged or resolved sync problems."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.incident import newest_object_ids
from domain.installation import Installation
from projections.batch import Batch
from projections.db import UTCDateTime, metadata
from projections.projection import On, Projection, on

# Who owns each installation (incident events do not repeat it).
owners = sa.Table(
    "incidents_installations",
    metadata,
    sa.Column("installation_id", sa.Uuid, primary_key=True),
    sa.Column("seller_id", sa.Uuid, nullable=False),
    sa.Column("app_id", sa.Uuid, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("installation_id", sa.Uuid, nullable=False, index=True),
    sa.Column("seller_id", sa.Uuid, nullable=False, index=True),
    sa.Column("app_id", sa.Uuid, nullable=False),
    sa.Column("area", sa.String(64), nullable=False),
    sa.Column("error_code", sa.String(120), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("object_ids", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False, index=True),
    sa.Column("acknowledged_at", UTCDateTime, nullable=True),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("resolution", sa.String(32), nullable=True),
)


class IncidentsProjection(Projection):
    """Builds incidents from the Installation's incident events."""

    name = "incidents"
    replay_cost = 0.8  # apply time per event of the bench log, relative (see Projection)
    tables = (owners, incidents)

    def handlers(self) -> Sequence[On[Any]]:
        return [
            on(Installation.Installed, self._installed),
            on(Installation.IncidentRaised, self._raised),
            on(Installation.IncidentRecurred, self._recurred),
            on(Installation.IncidentAcknowledged, self._acknowledged),
            on(Installation.IncidentResolved, self._resolved),
        ]

    def prepare(self, batch: Batch, events: Sequence[Any]) -> None:
        """The owners and incidents the events need that earlier steps wrote: one round trip
        each (those the events create are not asked for)."""
        installed = {e.originator_id for e in events if isinstance(e, Installation.Installed)}
        raised = [e for e in events if isinstance(e, Installation.IncidentRaised)]
        batch.get_many(owners, {e.originator_id for e in raised} - installed)
        kinds = Installation.IncidentRecurred | Installation.IncidentAcknowledged
        kinds |= Installation.IncidentResolved
        ids = {e.incident_id for e in events if isinstance(e, kinds)}
        batch.get_many(incidents, ids - {e.incident_id for e in raised})

    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        batch.add(
            owners,
            {"installation_id": e.originator_id, "seller_id": e.seller_id, "app_id": e.app_id},
        )

    def _raised(self, batch: Batch, e: Installation.IncidentRaised, position: int) -> None:
        owner = batch.require(owners, e.originator_id)
        batch.add(
            incidents,
            {
                "id": e.incident_id,
                "installation_id": e.originator_id,
                "seller_id": owner["seller_id"],
                "app_id": owner["app_id"],
                "area": e.area,
                "error_code": e.error_code,
                "message": e.message,
                "object_ids": newest_object_ids(list(e.object_ids)),
                "status": "open",
                "count": 1,
                "first_seen": e.occurred_at,
                "last_seen": e.occurred_at,
            },
        )

    def _recurred(self, batch: Batch, e: Installation.IncidentRecurred, position: int) -> None:
        row = batch.require(incidents, e.incident_id)
        batch.update(
            incidents,
            e.incident_id,
            count=row["count"] + 1,
            message=e.message,
            object_ids=newest_object_ids(list(row["object_ids"]) + list(e.object_ids)),
            first_seen=min(row["first_seen"], e.occurred_at),
            last_seen=max(row["last_seen"], e.occurred_at),
        )

    def _acknowledged(
        self, batch: Batch, e: Installation.IncidentAcknowledged, position: int
    ) -> None:
        batch.update(
            incidents, e.incident_id, status="acknowledged", acknowledged_at=e.acknowledged_at
        )

    def _resolved(self, batch: Batch, e: Installation.IncidentResolved, position: int) -> None:
        batch.update(
            incidents,
            e.incident_id,
            status="resolved",
            resolved_at=e.resolved_at,
            resolution=e.resolution,
        )


def item_of(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "installation_id": row.installation_id,
        "app_id": row.app_id,
        "area": row.area,
        "error_code": row.error_code,
        "message": row.message,
        "object_ids": list(row.object_ids),
        "status": row.status,
        "count": row._mapping["count"],
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "acknowledged_at": row.acknowledged_at,
        "resolved_at": row.resolved_at,
    }


def seller_incidents(
    conn: Connection,
    seller_id: UUID,
    *,
    status: str | None = None,
    installation_id: UUID | None = None,
    page: int = 1,
    page_size: int = 20,
) -> tuple[list[dict[str, Any]], int]:
    """A seller's incidents, most recently seen first."""
    where = [incidents.c.seller_id == seller_id]
    if status:
        where.append(incidents.c.status == status)
    if installation_id is not None:
        where.append(incidents.c.installation_id == installation_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(incidents).where(*where))
    rows = conn.execute(
        sa.select(incidents)
        .where(*where)
        .order_by(incidents.c.last_seen.desc(), incidents.c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return [item_of(r) for r in rows], int(total.scalar_one())


def seller_incident(conn: Connection, seller_id: UUID, incident_id: UUID) -> Any | None:
    """The seller's incident row, or None (also for another seller's incident)."""
    return conn.execute(
        sa.select(incidents).where(
            incidents.c.id == incident_id, incidents.c.seller_id == seller_id
        )
    ).first()
