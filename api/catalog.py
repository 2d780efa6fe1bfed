"""The public catalog: search with filters, sorts and facets; app detail; recently viewed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field
from starlette.responses import Response

from api.auth import current_session, optional_session
from api.pagination import Page, PageQuery
from api.problems import Problem
from api.routing import Call, Endpoint, Link
from domain import values as v
from projections import catalog_search, recently_viewed

# The closed vocabularies as types, so /openapi.json lists the allowed values.
Category: Any = Literal[tuple(v.CATEGORIES)]
Platform: Any = Literal[tuple(v.PLATFORMS)]


class CatalogParams(PageQuery):
    q: str | None = Field(default=None, max_length=200, description="words to search for")
    category: list[Category] = Field(default_factory=list, description="any of these categories")
    platform: list[Platform] = Field(default_factory=list, description="any of these platforms")
    sort: Literal["popular", "relevant", "new", "name", "rating"] | None = Field(
        default=None,
        description="default: relevant with q, popular without; rating ranks by a Bayesian "
        "average (the reviews' stars with a prior of 10 reviews of 3.5 stars)",
    )
    min_rating: float | None = Field(
        default=None,
        ge=1,
        le=5,
        allow_inf_nan=False,
        description="only apps whose average rating (as shown, one decimal) is at least this; "
        "apps without reviews are left out",
    )


class Rating(BaseModel):
    average: float | None = Field(description="stars from 1 to 5, one decimal; null: no reviews")
    count: int = Field(description="reviews counted (not deleted, not hidden)")


class AppItem(BaseModel):
    id: UUID
    slug: str
    name: str
    tagline: str
    categories: list[str]
    platforms: list[str]
    installs: int
    listed_at: datetime
    rating: Rating


class Facets(BaseModel):
    categories: dict[str, int]
    platforms: dict[str, int]


class AppPage(Page[AppItem]):
    facets: Facets


class Media(BaseModel):
    type: str
    url: str


class Faq(BaseModel):
    question: str
    answer: str


class Contact(BaseModel):
    email: str
    phone: str
    mailto: str


class AppDetail(AppItem):
    description: str
    benefits: list[str]
    compatibility: list[str]
    media: list[Media]
    partner_url: str
    faqs: list[Faq]
    contact: Contact
    scopes: list[str] = Field(description="required: a seller cannot leave them out")
    optional_scopes: list[str] = Field(
        default_factory=list, description="a seller may leave them out, or revoke them later"
    )
    durations: list[str]
    developer_id: UUID
    updated_at: datetime
    related: list[AppItem] = []


class ViewedItem(AppItem):
    viewed_at: datetime


class ViewedPage(Page[ViewedItem]):
    pass


async def search_apps(call: Call) -> Response:
    """Searches listed apps (full text over name, tagline, description, benefits, tags); the
    answer is kept as the JSON sent (see AnswerCache)."""
    p: CatalogParams = call.query
    query = catalog_search.CatalogQuery(
        q=p.q,
        categories=tuple(dict.fromkeys(p.category)),
        platforms=tuple(dict.fromkeys(p.platform)),
        sort=p.sort,
        page=p.page,
        page_size=p.page_size,
        min_rating=p.min_rating,
    )
    cache = call.state.catalog_answers

    def answer(conn: Any) -> bytes:
        found = catalog_search.search(conn, query)
        return AppPage.model_validate(found, from_attributes=True).model_dump_json().encode()

    body: bytes = await call.read(cache.answer, ("search", query), answer)
    return Response(body, media_type="application/json")


async def app_detail(call: Call) -> Response:
    """One listed app by id or slug, with related apps; a seller's view is remembered."""

    def load(conn: Any) -> tuple[UUID, bytes] | None:
        row = catalog_search.find_app(conn, call.path["id_or_slug"])
        if row is None:
            return None
        detail = AppDetail.model_validate(
            {**catalog_search.detail_of(row), "related": catalog_search.related(conn, row.id)}
        )
        return detail.id, detail.model_dump_json().encode()

    cache = call.state.catalog_answers
    found: tuple[UUID, bytes] | None = await call.read(
        cache.answer, ("detail", call.path["id_or_slug"]), load
    )
    if found is None:
        raise Problem(404, "App not found", f"no listed app {call.path['id_or_slug']!r}")
    app_id, body = found
    session = await optional_session(call.request)
    if session is not None and session.role == v.Role.SELLER.value:
        await call.run(
            recently_viewed.remember,
            call.state.projector.engine,
            session.account_id,
            app_id,
            call.state.store.clock.now(),
        )
    return Response(body, media_type="application/json")


async def my_recently_viewed(call: Call) -> ViewedPage:
    """The seller's recently viewed apps, most recent first (still listed ones)."""
    session = await current_session(call.request, role="seller")
    items = await call.read(recently_viewed.recently_viewed, session.account_id)
    return ViewedPage.model_validate(
        {"items": items, "total": len(items), "page": 1, "page_size": recently_viewed.KEEP}
    )


endpoints = [
    Endpoint("GET", "/v1/apps", search_apps, "Search the catalog", "catalog",
             query=CatalogParams, response=AppPage,
             links=(Link("InstallTheFirst", "install", request_body={
                 "app_id": "$response.body#/items/0/id"}),)),
    Endpoint("GET", "/v1/apps/{id_or_slug}", app_detail, "App detail", "catalog",
             response=AppDetail,
             links=(Link("Install", "install", request_body={"app_id": "$response.body#/id"}),)),
    Endpoint("GET", "/v1/me/recently-viewed", my_recently_viewed, "Recently viewed apps",
             "my apps", response=ViewedPage, auth="seller"),
]  # fmt: skip
