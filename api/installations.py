"""The install flow: install (pending, with the authorization conditions), authorize, decline."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.auth import current_session
from api.routing import Call, Endpoint
from domain import values as v
from domain.app_listing import AppListing
from domain.installation import AUTHORIZATION_WINDOW, Installation

Duration = Literal["30d", "90d", "180d", "365d", "unlimited"]


class InstallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: UUID
    duration: Duration
    contact_email: str = Field(max_length=320)
    contact_phone: str = Field(max_length=40)


class InstallationOut(BaseModel):
    id: UUID
    app_id: UUID
    seller_id: UUID
    status: str
    duration: str
    contact_email: str
    contact_phone: str
    scopes: list[str]
    installed_at: datetime
    authorized_at: datetime | None
    expires_at: datetime | None
    position: int | None


class ScopeCondition(BaseModel):
    scope: str
    description: str
    access: Literal["read", "change"]


class AppSummary(BaseModel):
    id: UUID
    slug: str
    name: str


class Conditions(BaseModel):
    """What the seller agrees to by authorizing: the access, and for how long."""

    app: AppSummary
    scopes: list[ScopeCondition]
    can_read: list[str]
    can_change: list[str]
    duration: str
    expires_at_if_authorized_now: datetime | None
    authorize_before: datetime


class PendingInstallationOut(InstallationOut):
    conditions: Conditions


def installation_out(
    installation: Installation, position: int | None, now: datetime
) -> dict[str, Any]:
    """The Installation shape of SPEC.md from the aggregate (status as of `now`)."""
    return {
        "id": installation.id,
        "app_id": installation.app_id,
        "seller_id": installation.seller_id,
        "status": installation.effective_status(now).value,
        "duration": installation.duration.value,
        "contact_email": installation.contact_email,
        "contact_phone": installation.contact_phone,
        "scopes": list(installation.scopes),
        "installed_at": installation.installed_at,
        "authorized_at": installation.authorized_at,
        "expires_at": installation.expires_at,
        "position": position,
    }


def conditions_of(installation: Installation, app: AppListing, now: datetime) -> Conditions:
    """The authorization conditions shown before the seller authorizes."""
    scopes = [
        ScopeCondition(
            scope=s,
            description=v.SCOPES[s],
            access="read" if s.endswith(".read") else "change",
        )
        for s in installation.scopes
    ]
    return Conditions(
        app=AppSummary(id=app.id, slug=app.details["slug"], name=app.details["name"]),
        scopes=scopes,
        can_read=[s.description for s in scopes if s.access == "read"],
        can_change=[s.description for s in scopes if s.access == "change"],
        duration=installation.duration.value,
        expires_at_if_authorized_now=installation.duration.expiry_from(now),
        authorize_before=installation.installed_at + AUTHORIZATION_WINDOW,
    )


async def install(call: Call) -> PendingInstallationOut:
    """Starts installing an app: pending authorization, with the conditions to review."""
    session = await current_session(call.request, role="seller")
    body: InstallRequest = call.body
    store = call.state.store
    outcome = await call.run(
        store.install,
        session.account_id,
        body.app_id,
        body.duration,
        body.contact_email,
        body.contact_phone,
    )
    installation = await call.run(store.installation, outcome.id)
    app = await call.run(store.app, installation.app_id)
    await call.written(outcome.position)
    now = store.clock.now()
    call.headers["Location"] = f"/v1/me/apps/{outcome.id}"
    return PendingInstallationOut.model_validate(
        {
            **installation_out(installation, outcome.position, now),
            "conditions": conditions_of(installation, app, now),
        }
    )


async def _act(call: Call, command: str) -> InstallationOut:
    session = await current_session(call.request, role="seller")
    installation_id = call.path_id("id", "installation")
    store = call.state.store
    outcome = await call.run(getattr(store, command), session.account_id, installation_id)
    installation = await call.run(store.installation, installation_id)
    await call.written(outcome.position)
    return InstallationOut.model_validate(
        installation_out(installation, outcome.position, store.clock.now())
    )


async def authorize(call: Call) -> InstallationOut:
    """Authorizes a pending installation (within 30 minutes): it becomes active."""
    return await _act(call, "authorize")


async def decline(call: Call) -> InstallationOut:
    """Declines a pending installation."""
    return await _act(call, "decline")


endpoints = [
    Endpoint("POST", "/v1/installations", install, "Install an app", "installations",
             body=InstallRequest, response=PendingInstallationOut, status=201, auth="seller",
             errors=(404, 409)),
    Endpoint("POST", "/v1/installations/{id}/authorize", authorize, "Authorize an installation",
             "installations", response=InstallationOut, auth="seller", errors=(409,)),
    Endpoint("POST", "/v1/installations/{id}/decline", decline, "Decline an installation",
             "installations", response=InstallationOut, auth="seller", errors=(409,)),
]  # fmt: skip
