"""Rendering a page: the Jinja2 environment, the headers every page carries, read-model reads.

`render(request, "home.html", **context)` gives an HTMLResponse with the signed-in visitor,
the CSRF field and the vocabularies in the template context. Handlers are plain functions
run in Starlette's threadpool, so they may block on the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import HTMLResponse

from domain import values as v
from projections import notifications
from web import csrf
from web.session import visitor

HERE = Path(__file__).parent
STATIC = HERE / "static"
T = TypeVar("T")

# No framing (clickjacking), nothing from other origins except a video the seller plays.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; media-src 'self' https:; object-src 'none';"
        " base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show who is signed in: never kept by shared caches or the back button.
    "Cache-Control": "no-store",
}
DURATION_LABELS = {
    "30d": "30 days",
    "90d": "90 days",
    "180d": "180 days",
    "365d": "1 year",
    "unlimited": "Unlimited",
}


def _static_versions() -> dict[str, str]:
    """A content hash per static file, so a changed stylesheet is never served stale."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        for path in STATIC.iterdir()
        if path.is_file()
    }


_VERSIONS = _static_versions()


def static(name: str) -> str:
    """The URL of a file in web/static."""
    return f"/static/{name}?v={_VERSIONS.get(name, '0')}"


def query_string(params: dict[str, Any]) -> str:
    """`?a=1&b=2&b=3` from a dict (lists repeat; empty values are left out), or ``."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(item)) for item in values if item not in (None, "")]
    return f"?{urlencode(pairs)}" if pairs else ""


def _monogram_hue(name: str) -> int:
    """One of eight tile colours for an app, stable across pages."""
    return int(hashlib.blake2s(name.encode(), digest_size=1).digest()[0]) % 8


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.globals.update(
    static=static,
    query_string=query_string,
    categories=v.CATEGORIES,
    platforms=v.PLATFORMS,
    scopes=v.SCOPES,
    duration_labels=DURATION_LABELS,
    hue=_monogram_hue,
)
environment.filters["label_in"] = lambda slug, vocabulary: vocabulary.get(slug, slug)
environment.filters["day"] = lambda moment: moment.strftime("%d %B %Y")
environment.filters["moment"] = lambda moment: moment.strftime("%d %B %Y, %H:%M UTC")


def page(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] = HEADERS,
    **context: Any,
) -> HTMLResponse:
    """The page `template` with `context` over what every page has (no visitor by default).

    The OAuth pages render through here with their own CSRF field and no store chrome.
    """
    values: dict[str, Any] = {
        "visitor": None,
        "unread_notifications": None,
        "focused": False,
        "notice": None,
        "q": "",
        "search_filters": {},
        "path": request.url.path,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    values.update(context)
    html = environment.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers=dict(headers))


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page `template` with `context`, the visitor and the CSRF field."""

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            csrf.FIELD, csrf.token(request)
        )

    who = visitor(request)

    def unread_notifications() -> int:
        """The header's count of the seller's unread notifications (read only if shown)."""
        assert who is not None
        return read(request, lambda conn: notifications.unread_count(conn, who.account_id))

    response = page(
        request,
        template,
        status=status,
        visitor=who,
        csrf_field=csrf_field,
        unread_notifications=unread_notifications if who is not None and who.is_seller else None,
        **context,
    )
    csrf.remember(request, response)
    return response


def message(request: Request, status: int, title: str, text: str, **links: str) -> HTMLResponse:
    """A page that only says something (not found, not allowed, …), with links onward."""
    return render(request, "message.html", status=status, title=title, message=text, links=links)


def settled(request: Request, position: int | None) -> None:
    """After a command: wait (bounded) until the read models show it, so the next page does."""
    if position:
        projector = request.app.state.projector
        projector.wake.set()
        projector.wait(position, request.app.state.consistency_timeout)


def read(request: Request, query: Callable[[Connection], T]) -> T:
    """`query(conn)` on a read-model connection."""
    with request.app.state.projector.engine.connect() as conn:
        return query(conn)


def cached(request: Request, key: Hashable, compute: Callable[[Connection], T]) -> T:
    """`compute(conn)`, remembered at the catalog's position (the pages' answer cache)."""
    answers = request.app.state.page_answers

    def answer(conn: Connection) -> T:
        result: T = answers.answer(conn, ("page", key), compute)
        return result

    return read(request, answer)
