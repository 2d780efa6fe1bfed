"""The seller's notifications (expiry warnings): list, mark read."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from api.auth import current_session
from api.my_apps import AppRef
from api.pagination import Page, PageQuery
from api.routing import Call, Endpoint
from application import notifications as commands
from domain.errors import NotificationNotFound
from projections import notifications


class NotificationOut(BaseModel):
    id: UUID
    kind: str = Field(description="`expiry_warning`")
    installation_id: UUID | None
    app: AppRef | None
    message: str
    created_at: datetime
    read: bool


class NotificationPage(Page[NotificationOut]):
    unread: int = Field(description="how many of all my notifications are unread")


class NotificationParams(PageQuery):
    unread: bool = Field(default=False, description="only the unread ones")


async def list_notifications(call: Call) -> NotificationPage:
    """My notifications, newest first, with the number unread."""
    session = await current_session(call.request, role="seller")
    p: NotificationParams = call.query
    items, total, unread = await call.read(
        notifications.seller_notifications,
        session.account_id,
        unread=p.unread,
        page=p.page,
        page_size=p.page_size,
    )
    return NotificationPage.model_validate(
        {"items": items, "total": total, "page": p.page, "page_size": p.page_size, "unread": unread}
    )


async def mark_read(call: Call) -> NotificationOut:
    """Marks one of my notifications read (again: no change)."""
    session = await current_session(call.request, role="seller")
    notification_id = call.path_id("id", "notification")
    found: dict[str, Any] | None = await call.read(
        notifications.notification_of, session.account_id, notification_id
    )
    if found is None:
        raise NotificationNotFound(f"notification {notification_id} not found")
    outcome = await call.run(
        commands.mark_read, call.state.store, session.account_id, notification_id, known=True
    )
    await call.written(outcome.position)
    return NotificationOut.model_validate({**found, "read": True})


endpoints = [
    Endpoint("GET", "/v1/me/notifications", list_notifications, "My notifications",
             "notifications", query=NotificationParams, response=NotificationPage,
             auth="seller"),
    Endpoint("POST", "/v1/me/notifications/{id}/read", mark_read, "Mark a notification read",
             "notifications", response=NotificationOut, auth="seller"),
]  # fmt: skip
