"""The seller's apps: list with expiry and incidents, renew, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.auth import current_session
from api.installations import InstallationOut, installation_out
from api.pagination import PageQuery
from api.routing import Call, Endpoint
from projections import my_apps


class AppRef(BaseModel):
    id: UUID
    slug: str
    name: str


class MyAppItem(BaseModel):
    installation_id: UUID
    app: AppRef
    status: str
    duration: str
    scopes: list[str]
    authorized_at: datetime | None
    expires_at: datetime | None
    days_left: int | None
    open_incidents: int


class MyAppPage(BaseModel):
    items: list[MyAppItem]
    total: int
    page: int
    page_size: int


class MyAppParams(PageQuery):
    status: (
        Literal["active", "expiring", "expired", "cancelled", "pending_authorization", "declined"]
        | None
    ) = Field(default=None, description="default: every status but declined")


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: Literal["30d", "90d", "180d", "365d", "unlimited"]


async def list_my_apps(call: Call) -> MyAppPage:
    """My installations, soonest expiry first, with days left and open incidents."""
    session = await current_session(call.request, role="seller")
    p: MyAppParams = call.query
    items, total = await call.read(
        my_apps.my_apps,
        session.account_id,
        call.state.store.clock.now(),
        status=p.status,
        page=p.page,
        page_size=p.page_size,
    )
    return MyAppPage.model_validate(
        {"items": items, "total": total, "page": p.page, "page_size": p.page_size}
    )


async def renew(call: Call) -> InstallationOut:
    """Renews from max(now, expires_at); brings back an expired installation. Cancelled → 409."""
    session = await current_session(call.request, role="seller")
    installation_id = call.path_id("installation_id", "installation")
    body: RenewRequest = call.body
    store = call.state.store
    outcome = await call.run(store.renew, session.account_id, installation_id, body.duration)
    installation = await call.run(store.installation, installation_id)
    await call.written(outcome.position)
    return InstallationOut.model_validate(
        installation_out(installation, outcome.position, store.clock.now())
    )


async def cancel(call: Call) -> InstallationOut:
    """Cancels at once: the app's tokens and data access end. Final."""
    session = await current_session(call.request, role="seller")
    installation_id = call.path_id("installation_id", "installation")
    store = call.state.store
    outcome = await call.run(store.cancel, session.account_id, installation_id)
    installation = await call.run(store.installation, installation_id)
    await call.written(outcome.position)
    return InstallationOut.model_validate(
        installation_out(installation, outcome.position, store.clock.now())
    )


endpoints = [
    Endpoint("GET", "/v1/me/apps", list_my_apps, "My apps", "my apps",
             query=MyAppParams, response=MyAppPage, auth="seller"),
    Endpoint("POST", "/v1/me/apps/{installation_id}/renew", renew, "Renew", "my apps",
             body=RenewRequest, response=InstallationOut, auth="seller", errors=(409,)),
    Endpoint("POST", "/v1/me/apps/{installation_id}/cancel", cancel, "Cancel", "my apps",
             response=InstallationOut, auth="seller", errors=(409,)),
]  # fmt: skip
