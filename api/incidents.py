"""The seller's incidents: list, acknowledge, resolve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from api.auth import current_session
from api.pagination import Page, PageQuery
from api.problems import Problem
from api.routing import Call, Endpoint, Link
from application import installations
from application.store import Outcome, Store
from domain.installation import Installation
from domain.values import IncidentStatus
from projections import incidents


class IncidentOut(BaseModel):
    id: UUID
    installation_id: UUID
    app_id: UUID
    area: str
    error_code: str
    message: str
    object_ids: list[str]
    status: str
    count: int
    first_seen: datetime
    last_seen: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    position: int | None = None


class IncidentPage(Page[IncidentOut]):
    pass


class IncidentParams(PageQuery):
    status: IncidentStatus | None = None
    installation_id: UUID | None = Field(default=None, description="only this installation's")


async def list_incidents(call: Call) -> IncidentPage:
    """My incidents, most recently seen first."""
    session = await current_session(call.request, role="seller")
    p: IncidentParams = call.query
    items, total = await call.read(
        incidents.seller_incidents,
        session.account_id,
        status=p.status,
        installation_id=p.installation_id,
        page=p.page,
        page_size=p.page_size,
    )
    return IncidentPage.of(items, total, p)


def _incident_out(installation: Installation, incident_id: UUID, position: int | None) -> Any:
    i = installation.incidents[incident_id]
    return {
        "id": i.id,
        "installation_id": installation.id,
        "app_id": installation.app_id,
        "area": i.area,
        "error_code": i.error_code,
        "message": i.message,
        "object_ids": list(i.object_ids),
        "status": i.status.value,
        "count": i.count,
        "first_seen": i.first_seen,
        "last_seen": i.last_seen,
        "acknowledged_at": i.acknowledged_at,
        "resolved_at": i.resolved_at,
        "position": position,
    }


async def _act(call: Call, command: Callable[[Store, UUID, UUID, UUID], Outcome]) -> IncidentOut:
    session = await current_session(call.request, role="seller")
    incident_id = call.path_id("id", "incident")
    row = await call.read(incidents.seller_incident, session.account_id, incident_id)
    if row is None:
        raise Problem(404, "Incident not found", f"incident {incident_id} not found")
    store = call.state.store
    outcome = await call.run(command, store, session.account_id, row.installation_id, incident_id)
    installation = await call.run(installations.installation, store, row.installation_id)
    await call.written(outcome.position)
    return IncidentOut.model_validate(_incident_out(installation, incident_id, outcome.position))


async def acknowledge(call: Call) -> IncidentOut:
    """Marks an open incident as seen (it keeps grouping recurrences)."""
    return await _act(call, installations.acknowledge_incident)


async def resolve(call: Call) -> IncidentOut:
    """Marks an incident resolved."""
    return await _act(call, installations.resolve_incident)


FIRST = "$response.body#/items/0/id"

endpoints = [
    Endpoint("GET", "/v1/me/incidents", list_incidents, "My incidents", "incidents",
             query=IncidentParams, response=IncidentPage, auth="seller",
             links=(Link("AcknowledgeTheFirst", "acknowledge", {"id": FIRST}),
                    Link("ResolveTheFirst", "resolve", {"id": FIRST}))),
    Endpoint("POST", "/v1/me/incidents/{id}/acknowledge", acknowledge, "Acknowledge",
             "incidents", response=IncidentOut, auth="seller", errors=(409,)),
    Endpoint("POST", "/v1/me/incidents/{id}/resolve", resolve, "Resolve", "incidents",
             response=IncidentOut, auth="seller", errors=(409,)),
]  # fmt: skip
