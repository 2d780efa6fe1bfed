"""Developer routes: list, change and delist apps, rotate their secret; installations of my
apps."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.auth import current_session
from api.catalog import AppDetail
from api.my_apps import AppRef
from api.pagination import Page, PageQuery
from api.routing import Call, Endpoint
from application import listings
from domain.app_listing import AppListing
from projections import catalog_search, developer_apps


class MediaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["image", "video"]
    url: str = Field(max_length=2048)


class FaqIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=300)
    answer: str = Field(max_length=3000)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    phone: str = Field(max_length=40)


class AppChanges(BaseModel):
    """PATCH body: any listing fields; the ones sent replace the old values."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=80)
    slug: str | None = Field(default=None, max_length=64)
    tagline: str | None = Field(default=None, max_length=160)
    description: str | None = Field(default=None, max_length=10_000)
    benefits: list[str] | None = Field(default=None, max_length=12)
    categories: list[str] | None = Field(default=None, max_length=20)
    platforms: list[str] | None = Field(default=None, max_length=20)
    media: list[MediaIn] | None = Field(default=None, max_length=20)
    compatibility: list[str] | None = Field(default=None, max_length=20)
    partner_url: str | None = Field(default=None, max_length=2048)
    faqs: list[FaqIn] | None = Field(default=None, max_length=30)
    contact: ContactIn | None = None
    scopes: list[str] | None = Field(default=None, max_length=20)
    optional_scopes: list[str] | None = Field(
        default=None, max_length=20, description="scopes a seller may leave out or revoke"
    )
    redirect_uris: list[str] | None = Field(default=None, max_length=10)
    durations: list[str] | None = Field(default=None, max_length=5)


class NewApp(AppChanges):
    """POST body: a complete listing (slug defaults to one made from the name)."""

    name: str = Field(max_length=80)
    tagline: str = Field(max_length=160)
    description: str = Field(max_length=10_000)
    categories: list[str] = Field(max_length=20)
    partner_url: str = Field(max_length=2048)
    contact: ContactIn
    scopes: list[str] = Field(max_length=20)
    redirect_uris: list[str] = Field(max_length=10)


class ListedAppOut(AppDetail):
    client_id: str
    client_secret: str | None = None
    redirect_uris: list[str]
    delisted_at: datetime | None = None
    position: int | None = None


class SellerContact(BaseModel):
    id: UUID
    name: str | None
    contact_email: str
    contact_phone: str


class DeveloperInstallation(BaseModel):
    installation_id: UUID
    app: AppRef
    status: str
    duration: str
    scopes: list[str]
    installed_at: datetime
    authorized_at: datetime | None
    expires_at: datetime | None
    seller: SellerContact | None


class DeveloperInstallationPage(Page[DeveloperInstallation]):
    pass


class DeveloperInstallationParams(PageQuery):
    app_id: UUID | None = Field(default=None, description="only this app's installations")


def _listing_detail(app: AppListing, installs: int) -> dict[str, Any]:
    """The detail of an app from its aggregate (when the catalog has not caught up)."""
    d = app.details
    return {
        "id": app.id,
        "installs": installs,
        "listed_at": app.listed_at,
        "updated_at": app.updated_at,
        "developer_id": app.developer_id,
        **{k: d[k] for k in ("slug", "name", "tagline", "description", "categories")},
        **{k: d[k] for k in ("platforms", "benefits", "compatibility", "media", "partner_url")},
        **{k: d[k] for k in ("faqs", "scopes", "durations")},
        "optional_scopes": d.get("optional_scopes", []),
        "contact": {**d["contact"], "mailto": f"mailto:{d['contact']['email']}"},
    }


async def _answer(call: Call, app_id: UUID, position: int | None, secret: str | None) -> Any:
    await call.written(position)
    app: AppListing = await call.run(listings.app, call.state.store, app_id)
    row = await call.read(catalog_search.find_any_app, app_id)
    detail = _listing_detail(app, row.installs if row is not None else 0)
    detail["rating"] = {
        "average": row.rating_average if row is not None else None,
        "count": row.rating_count if row is not None else 0,
    }
    return ListedAppOut.model_validate(
        {
            **detail,
            "client_id": app.client_id,
            "client_secret": secret,
            "redirect_uris": app.details["redirect_uris"],
            "delisted_at": app.delisted_at,
            "position": position,
        }
    )


async def list_app(call: Call) -> Any:
    """Lists a new app; the answer carries its client_id and, this once, its client_secret."""
    session = await current_session(call.request, role="developer")
    body: NewApp = call.body
    listed = await call.run(
        listings.list_app, call.state.store, session.account_id, body.model_dump(exclude_none=True)
    )
    call.headers["Location"] = f"/v1/apps/{listed.id}"
    return await _answer(call, listed.id, listed.position, listed.client_secret)


async def update_app(call: Call) -> Any:
    """Changes some fields of my app (PATCH semantics)."""
    session = await current_session(call.request, role="developer")
    app_id = call.path_id("id", "app")
    body: AppChanges = call.body
    outcome = await call.run(
        listings.update_app,
        call.state.store,
        session.account_id,
        app_id,
        body.model_dump(exclude_none=True),
    )
    return await _answer(call, app_id, outcome.position, None)


async def delist_app(call: Call) -> Response:
    """Delists my app: it leaves the catalog; existing installations keep working."""
    session = await current_session(call.request, role="developer")
    app_id = call.path_id("id", "app")
    outcome = await call.run(listings.delist_app, call.state.store, session.account_id, app_id)
    await call.written(outcome.position)
    return Response(status_code=204)


async def rotate_secret(call: Call) -> Any:
    """A new client secret for my app, shown this once; the old one stops working at once."""
    session = await current_session(call.request, role="developer")
    app_id = call.path_id("id", "app")
    rotated = await call.run(
        listings.rotate_client_secret, call.state.store, session.account_id, app_id
    )
    return await _answer(call, app_id, rotated.position, rotated.client_secret)


async def installations_of_my_apps(call: Call) -> DeveloperInstallationPage:
    """Installations of my apps, newest first; cancelled ones carry no seller data."""
    session = await current_session(call.request, role="developer")
    p: DeveloperInstallationParams = call.query
    items, total = await call.read(
        developer_apps.developer_installations,
        session.account_id,
        call.state.store.clock.now(),
        app_id=p.app_id,
        page=p.page,
        page_size=p.page_size,
    )
    return DeveloperInstallationPage.of(items, total, p)


endpoints = [
    Endpoint("POST", "/v1/apps", list_app, "List an app", "developer",
             body=NewApp, response=ListedAppOut, status=201, auth="developer", errors=(409,)),
    Endpoint("PATCH", "/v1/apps/{id}", update_app, "Change my app", "developer",
             body=AppChanges, response=ListedAppOut, auth="developer", errors=(409,)),
    Endpoint("DELETE", "/v1/apps/{id}", delist_app, "Delist my app", "developer",
             status=204, auth="developer"),
    Endpoint("POST", "/v1/apps/{id}/rotate-secret", rotate_secret, "Rotate my app's client "
             "secret", "developer", response=ListedAppOut, auth="developer"),
    Endpoint("GET", "/v1/developer/installations", installations_of_my_apps,
             "Installations of my apps", "developer", query=DeveloperInstallationParams,
             response=DeveloperInstallationPage, auth="developer"),
]  # fmt: skip
