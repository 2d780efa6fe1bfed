"""The store's public pages: home (search, filters, sort, pages) and app detail.

Both read the catalog projection through the same queries as `GET /v1/apps` and
`GET /v1/apps/{id_or_slug}`; the query string is validated by the API's `CatalogParams`,
so the pages accept exactly what the API does (unknown values are dropped, not an error).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.catalog import CatalogParams
from projections import catalog_search, recently_viewed
from web.pages import cached, message, read, render
from web.reviews import reviews_of
from web.session import visitor

PAGE_SIZE = 24
RECENT_SHOWN = 6
SORTS = {
    "popular": "Popular",
    "relevant": "Relevant",
    "rating": "Top rated",
    "new": "New",
    "name": "A–Z",
}
# The minimum ratings the filters offer ("" = any).
MIN_RATINGS = {
    "": "Any rating",
    "4.5": "4.5 stars and up",
    "4": "4 stars and up",
    "3": "3 stars and up",
}


def _params(request: Request) -> CatalogParams:
    """The search in the query string; values the API would refuse are left out."""
    query = request.query_params
    raw: dict[str, Any] = {
        "q": query.get("q", "").strip() or None,
        "category": query.getlist("category"),
        "platform": query.getlist("platform"),
        "sort": query.get("sort") or None,
        "min_rating": query.get("min_rating") or None,
        "page": query.get("page") or 1,
        "page_size": PAGE_SIZE,
    }
    for _ in range(len(raw) + 2):
        try:
            return CatalogParams.model_validate(raw)
        except ValidationError as error:
            for problem in error.errors():
                name, *rest = problem["loc"]
                value = raw.get(str(name))
                if rest and isinstance(value, list) and isinstance(rest[0], int):
                    value[rest[0]] = None
                    raw[str(name)] = [item for item in value if item is not None]
                else:
                    raw.pop(str(name), None)
    return CatalogParams(page_size=PAGE_SIZE)


def home(request: Request) -> Response:
    """GET /: the catalog, its filters with counts, sort and pages; all state in the URL."""
    p = _params(request)
    query = catalog_search.CatalogQuery(
        q=p.q,
        categories=tuple(dict.fromkeys(p.category)),
        platforms=tuple(dict.fromkeys(p.platform)),
        sort=p.sort,
        page=p.page,
        page_size=p.page_size,
        min_rating=p.min_rating,
    )
    result = cached(request, ("search", query), lambda conn: catalog_search.search(conn, query))
    state = {
        "q": p.q or "",
        "category": list(query.categories),
        "platform": list(query.platforms),
        "sort": p.sort or "",
        "min_rating": "" if p.min_rating is None else f"{p.min_rating:g}",
    }
    pages = max(1, -(-result.total // PAGE_SIZE))
    return render(
        request,
        "home.html",
        result=result,
        state=state,
        sort=query.effective_sort,
        sorts=SORTS,
        min_ratings=MIN_RATINGS,
        pages=pages,
        page_links=_page_window(query.page, pages),
        q=state["q"],
        search_filters={"category": state["category"], "platform": state["platform"]},
    )


def _page_window(page: int, pages: int) -> list[int | None]:
    """Page numbers to link: first, last, and two either side of this one (None = gap)."""
    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    out: list[int | None] = []
    for n in shown:
        if out and out[-1] is not None and n - out[-1] > 1:
            out.append(None)
        out.append(n)
    return out


def _detail(conn: Connection, slug: str) -> dict[str, Any] | None:
    row = catalog_search.find_app(conn, slug)
    if row is None:
        return None
    return {**catalog_search.detail_of(row), "related": catalog_search.related(conn, row.id)}


def app_detail(request: Request) -> Response:
    """GET /apps/{slug}: media, description, benefits, FAQs, contact, related apps.

    A signed-in seller's view is remembered, and their other recent views are shown.
    """
    slug = request.path_params["slug"]
    app = cached(request, ("detail", slug), lambda conn: _detail(conn, slug))
    if app is None:
        return not_found(request, "No listed app has this address.")
    if app["slug"] != slug:  # reached by id: one address per app
        return RedirectResponse(f"/apps/{app['slug']}", status_code=301)
    seller = visitor(request)
    recent: list[dict[str, Any]] | None = None
    if seller is not None and seller.is_seller:
        viewed = read(
            request, lambda conn: recently_viewed.recently_viewed(conn, seller.account_id)
        )
        recent = [item for item in viewed if item["id"] != app["id"]][:RECENT_SHOWN]
        recently_viewed.remember(
            request.app.state.projector.engine,
            seller.account_id,
            app["id"],
            request.app.state.store.clock.now(),
        )
    shown = reviews_of(request, app, seller)
    return render(request, "app_detail.html", app=app, recent=recent, reviews=shown)


def not_found(request: Request, text: str) -> Response:
    return message(request, 404, "Page not found", text)
