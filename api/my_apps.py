"""The seller's apps: list with expiry and incidents, the authorization record, renew, cancel,
revoke one optional scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from api.auth import bearer_token, checked_session, current_session
from api.installations import LIVE, RECORD, InstallationOut, act_on_installation
from api.pagination import Page, PageQuery
from api.routing import Call, Endpoint
from application import installations
from application.store import Store
from domain.values import DurationText
from projections import my_apps
from projections.authorization_record import authorization_record


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


class MyAppPage(Page[MyAppItem]):
    pass


class MyAppParams(PageQuery):
    status: my_apps.MyAppsStatus | None = Field(
        default=None, description="default: every status but declined"
    )


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: DurationText


class AuthorizationRecord(BaseModel):
    """Who authorized what, when, for how long, and what the app's tokens did."""

    model_config = ConfigDict(extra="allow")

    installation_id: UUID
    app: AppRef
    authorized_by: dict[str, Any]
    via: str
    status: str
    duration: str
    scopes: list[dict[str, str]]
    installed_at: str
    authorized_at: str | None
    expires_at: str | None
    ended_at: str | None
    end_reason: str | None
    contact_email: str
    contact_phone: str
    history: list[dict[str, Any]]
    grants: list[dict[str, Any]]
    token_activity: list[dict[str, Any]]


async def list_my_apps(call: Call) -> MyAppPage:
    """My installations, soonest expiry first, with days left and open incidents."""
    p: MyAppParams = call.query
    store: Store = call.state.store
    token = bearer_token(call.request)

    def mine(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        # The token check and the read in one trip to the threadpool.
        session = checked_session(store, token, role="seller")
        return my_apps.my_apps(
            conn,
            session.account_id,
            store.clock.now(),
            status=p.status,
            page=p.page,
            page_size=p.page_size,
        )

    items, total = await call.read(mine)
    return MyAppPage.of(items, total, p)


async def my_authorization_record(call: Call) -> dict[str, Any]:
    """Who authorized what, when, for how long, and the token activity of one installation."""
    session = await current_session(call.request, role="seller")
    installation_id = call.path_id("installation_id", "installation")
    record: dict[str, Any] = await call.run(
        authorization_record, call.state.store, session.account_id, installation_id
    )
    return record


async def renew(call: Call) -> InstallationOut:
    """Renews from max(now, expires_at); brings back an expired installation. Cancelled → 409."""
    body: RenewRequest = call.body
    return await act_on_installation(
        call, installations.renew, body.duration, path_name="installation_id"
    )


async def cancel(call: Call) -> InstallationOut:
    """Cancels at once: the app's tokens and data access end. Final."""
    return await act_on_installation(call, installations.cancel, path_name="installation_id")


async def revoke_scope(call: Call) -> InstallationOut:
    """Withdraws one optional scope: every live token of the app loses it at once (422 for a
    required scope, or one not granted). The answer carries the scopes left."""
    return await act_on_installation(
        call, installations.revoke_scope, call.path["scope"], path_name="installation_id"
    )


endpoints = [
    Endpoint("GET", "/v1/me/apps", list_my_apps, "My apps", "my apps",
             query=MyAppParams, response=MyAppPage, auth="seller"),
    Endpoint("GET", "/v1/me/apps/{installation_id}", my_authorization_record,
             "Authorization record of one of my installations", "my apps",
             response=AuthorizationRecord, auth="seller"),
    Endpoint("POST", "/v1/me/apps/{installation_id}/renew", renew, "Renew", "my apps",
             body=RenewRequest, response=InstallationOut, auth="seller", errors=(409,),
             links=LIVE),
    Endpoint("POST", "/v1/me/apps/{installation_id}/cancel", cancel, "Cancel", "my apps",
             response=InstallationOut, auth="seller", errors=(409,), links=(RECORD,)),
    Endpoint("POST", "/v1/me/apps/{installation_id}/scopes/{scope}/revoke", revoke_scope,
             "Revoke one optional scope", "my apps", response=InstallationOut, auth="seller",
             errors=(409, 422), links=LIVE),
]  # fmt: skip
