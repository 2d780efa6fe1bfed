"""Connector sync events over HTTP, for connectors without Kafka: `POST /v1/sync-events`.

Same message as the Kafka topic (application.sync_events.SyncEventMessage), authenticated by
the installation's OAuth access token, applied exactly once per event_id. Reporting on an
area needs a scope of that area's data (domain.values.SYNC_AREA_SCOPES: `orders` needs
orders.read or orders.write, …); an area not listed there needs none.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from api.auth import installation_token
from api.problems import Problem
from api.routing import Call, Endpoint
from application import sync_events
from application.sync_events import SyncEventMessage
from domain.values import SYNC_AREA_SCOPES


class SyncEventAccepted(BaseModel):
    event_id: str
    installation_id: UUID
    duplicate: bool
    incident_ids: list[UUID]
    position: int | None = None


async def post_sync_event(call: Call) -> SyncEventAccepted:
    """Report one sync run of the installation the access token belongs to.

    A failure raises an incident or groups into the open one; a success resolves the open
    incidents of its area. Sending the same event_id again has no second effect.
    """
    message: SyncEventMessage = call.body
    check = await installation_token(call.request, SYNC_AREA_SCOPES.get(message.area))
    if message.installation_id != check.installation_id:
        raise Problem(
            403,
            "Wrong installation",
            "the access token belongs to another installation",
            errors=[{"field": "installation_id", "message": "not this token's installation"}],
        )
    if message.app_id is not None and message.app_id != check.app_id:
        raise Problem(
            403,
            "Wrong app",
            "the access token was issued to another app",
            errors=[{"field": "app_id", "message": "not this token's app"}],
        )
    result = await call.run(
        sync_events.record_sync_event, call.state.store, message.to_sync_event()
    )
    await call.written(result.position)
    return SyncEventAccepted(
        event_id=result.event_id,
        installation_id=result.installation_id,
        duplicate=result.duplicate,
        incident_ids=result.incident_ids,
        position=result.position,
    )


endpoints = [
    Endpoint("POST", "/v1/sync-events", post_sync_event, "Report a sync event", "sync-events",
             body=SyncEventMessage, response=SyncEventAccepted, status=202, auth="app",
             errors=(409,)),
]  # fmt: skip
