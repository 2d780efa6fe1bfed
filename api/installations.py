"""The install flow: install (pending, with the authorization conditions), authorize (the
developer is handed a code), decline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.auth import current_session
from api.routing import Call, Endpoint, Link
from api.tokens import issuer
from application import authorization, installations, listings
from application.store import Outcome, Store
from domain.app_listing import AppListing
from domain.installation import Installation
from domain.values import DurationText


class InstallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: UUID
    duration: DurationText
    contact_email: str = Field(max_length=320)
    contact_phone: str = Field(max_length=40)
    scopes: list[str] | None = Field(
        default=None,
        max_length=20,
        description="the scopes granted: every required one, and the optional ones the seller "
        "keeps (default: every scope the app asks for)",
    )


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


class AuthorizedInstallationOut(InstallationOut):
    redirect_url: str = Field(
        description="send the seller here: the app's first redirect URI with a one-time "
        "`code` (exchanged at /oauth/token with client authentication, no PKCE) and `iss`"
    )


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


def conditions_out(installation: Installation, app: AppListing, now: datetime) -> Conditions:
    """The domain's authorization conditions, with the app they are for."""
    conditions = installation.conditions(now)
    return Conditions(
        app=AppSummary(id=app.id, slug=app.details["slug"], name=app.details["name"]),
        scopes=[
            ScopeCondition(scope=s.scope, description=s.description, access=s.access)
            for s in conditions.scopes
        ],
        can_read=conditions.can_read,
        can_change=conditions.can_change,
        duration=conditions.duration,
        expires_at_if_authorized_now=conditions.expires_at_if_authorized_now,
        authorize_before=conditions.authorize_before,
    )


async def install(call: Call) -> PendingInstallationOut:
    """Starts installing an app: pending authorization, with the conditions to review."""
    session = await current_session(call.request, role="seller")
    body: InstallRequest = call.body
    store = call.state.store

    def run() -> tuple[Outcome, Any, Any]:  # one trip to the threadpool, not three
        outcome = installations.install(
            store,
            session.account_id,
            body.app_id,
            body.duration,
            body.contact_email,
            body.contact_phone,
            scopes=body.scopes,
        )
        installation = installations.installation(store, outcome.id)
        return outcome, installation, listings.app(store, installation.app_id)

    outcome, installation, app = await call.run(run)
    await call.written(outcome.position)
    now = store.clock.now()
    call.headers["Location"] = f"/v1/me/apps/{outcome.id}"
    return PendingInstallationOut.model_validate(
        {
            **installation_out(installation, outcome.position, now),
            "conditions": conditions_out(installation, app, now),
        }
    )


async def act_on_installation(
    call: Call, command: Callable[..., Outcome], *args: Any, path_name: str = "id"
) -> InstallationOut:
    """Runs a seller's command on one of their installations; answers its new state."""
    session = await current_session(call.request, role="seller")
    installation_id = call.path_id(path_name, "installation")
    store: Store = call.state.store

    def run() -> tuple[Outcome, Any]:  # one trip to the threadpool, not two
        outcome = command(store, session.account_id, installation_id, *args)
        return outcome, installations.installation(store, installation_id)

    outcome, installation = await call.run(run)
    await call.written(outcome.position)
    return InstallationOut.model_validate(
        installation_out(installation, outcome.position, store.clock.now())
    )


async def authorize(call: Call) -> AuthorizedInstallationOut:
    """Authorizes a pending installation (within 30 minutes): it becomes active, and the
    answer's `redirect_url` hands the developer a one-time code for it."""
    session = await current_session(call.request, role="seller")
    installation_id = call.path_id("id", "installation")
    store: Store = call.state.store
    done = await call.run(
        authorization.authorize_in_store,
        store,
        session.account_id,
        installation_id,
        issuer(call.request),
    )
    installation = await call.run(installations.installation, store, installation_id)
    await call.written(done.position)
    answer = installation_out(installation, done.position, store.clock.now())
    return AuthorizedInstallationOut.model_validate({**answer, "redirect_url": done.redirect_url})


async def decline(call: Call) -> InstallationOut:
    """Declines a pending installation."""
    return await act_on_installation(call, installations.decline)


# What an installation's answer leads to (OpenAPI links): its id is the path parameter.
THIS = "$response.body#/id"
RECORD = Link("AuthorizationRecord", "my_authorization_record", {"installation_id": THIS})
LIVE = (
    Link("Renew", "renew", {"installation_id": THIS}),
    Link("Cancel", "cancel", {"installation_id": THIS}),
    RECORD,
)

endpoints = [
    Endpoint("POST", "/v1/installations", install, "Install an app", "installations",
             body=InstallRequest, response=PendingInstallationOut, status=201, auth="seller",
             errors=(404, 409), links=(Link("Authorize", "authorize", {"id": THIS}),
                                       Link("Decline", "decline", {"id": THIS}), RECORD)),
    Endpoint("POST", "/v1/installations/{id}/authorize", authorize, "Authorize an installation",
             "installations", response=AuthorizedInstallationOut, auth="seller", errors=(409,),
             links=LIVE),
    Endpoint("POST", "/v1/installations/{id}/decline", decline, "Decline an installation",
             "installations", response=InstallationOut, auth="seller", errors=(409,),
             links=(RECORD,)),
]  # fmt: skip
