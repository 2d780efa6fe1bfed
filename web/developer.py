"""The developer console: my listings (list, create, edit), their OAuth credentials (the
secret shown once, after listing and after each rotation), redirect URIs and the
authorization link to hand to sellers, the installations of my apps and their incidents.

Listings are edited on the aggregate (application/listings.py), lists read projections.
Everything is looked up through the signed-in developer: another developer's app is not
found (404).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.tokens import issuer
from application import listings
from domain import values as v
from domain.app_listing import AppListing
from domain.errors import AppNotFound, DomainError, InvalidInput, SlugTaken
from projections import developer_apps
from web import listing_form
from web.access import for_developers
from web.forms import Form
from web.pages import message, read, render, settled
from web.session import Visitor

PAGE_SIZE = 20
# Above this many apps a select is no way to choose one: the console's rows link instead.
FILTER_APPS = 100
INCIDENT_FILTERS = {"": "All", "open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}  # fmt: skip
DONE = {"saved": "Your changes are saved and shown in the store."}


def _page_number(request: Request) -> int:
    try:
        return max(1, min(10_000, int(request.query_params.get("page") or 1)))
    except ValueError:
        return 1


@for_developers
def console_page(request: Request, developer: Visitor) -> Response:
    """GET /developer: my listings with their installations, a page at a time."""
    page = _page_number(request)
    now = request.app.state.store.clock.now()
    apps, total = read(
        request,
        lambda conn: developer_apps.developer_apps(
            conn, developer.account_id, now, page=page, page_size=PAGE_SIZE
        ),
    )
    return render(
        request,
        "developer/console.html",
        apps=apps,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
    )


def _app_names(request: Request, developer: Visitor) -> list[dict[str, Any]]:
    """The apps to filter by (none when there are too many to choose from in a list)."""
    names = read(
        request,
        lambda conn: developer_apps.developer_app_names(
            conn, developer.account_id, limit=FILTER_APPS + 1
        ),
    )
    return names if len(names) <= FILTER_APPS else []


# --- one listing --------------------------------------------------------------------------
def _own(request: Request, developer: Visitor) -> AppListing | None:
    """The developer's app named in the path, or None."""
    try:
        app_id = UUID(request.path_params["id"])
        return listings.own_app(request.app.state.store, developer.account_id, app_id)
    except (ValueError, AppNotFound):
        return None


def _not_found(request: Request) -> Response:
    text = "None of your apps is at this address."
    return message(request, 404, "Page not found", text, **{"Developer console": "/developer"})


def authorization_links(request: Request, app: AppListing) -> list[str]:
    """The link a seller opens to install the app, one per redirect URI."""
    base = issuer(request)
    return [
        f"{base}/oauth/authorize?"
        + urlencode({"client_id": app.client_id, "response_type": "code", "redirect_uri": uri})
        for uri in app.details["redirect_uris"]
    ]


@for_developers
def app_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/apps/{id}: credentials (no secret), redirect URIs, authorization link."""
    app = _own(request, developer)
    if app is None:
        return _not_found(request)
    now = request.app.state.store.clock.now()
    counted, _ = read(
        request,
        lambda conn: developer_apps.developer_apps(conn, developer.account_id, now, app_id=app.id),
    )
    done = DONE.get(request.query_params.get("done", ""))
    return render(
        request,
        "developer/app.html",
        app=app,
        details=app.details,
        links=authorization_links(request, app),
        counts=counted[0] if counted else None,
        notice=done,
    )


# --- create and edit -------------------------------------------------------------------------
def _form(
    request: Request,
    values: dict[str, Any],
    errors: dict[str, str],
    app: AppListing | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "developer/listing_form.html",
        status=status,
        app=app,
        values=values,
        errors=errors,
        labels=listing_form.LABELS,
        scope_words=v.SCOPES,
    )


@for_developers
def new_app_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/apps/new: an empty listing form."""
    return _form(request, listing_form.form_values({}), {})


@for_developers
def create_app(request: Request, developer: Visitor, form: Form) -> Response:
    """POST /developer/apps/new: lists the app, then shows its credentials this once."""
    details = listing_form.listing_of(form)
    values = listing_form.form_values(details)
    errors = listing_form.check(details)
    if errors:
        return _form(request, values, errors, status=422)
    store = request.app.state.store
    try:
        listed = listings.list_app(store, developer.account_id, details)
    except DomainError as error:
        return _form(request, values, _errors_of(error), status=409)
    settled(request, listed.position)
    app = listings.app(store, listed.id)
    return _credentials(request, app, listed.client_secret, created=True)


def _errors_of(error: DomainError) -> dict[str, str]:
    if isinstance(error, SlugTaken):
        return {"slug": "Another app has this address: choose another slug."}
    if isinstance(error, InvalidInput):
        return listing_form.errors_of(error)
    return {"name": error.detail}


@for_developers
def edit_app_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/apps/{id}/edit: the listing form with the app's fields."""
    app = _own(request, developer)
    if app is None:
        return _not_found(request)
    return _form(request, listing_form.form_values(app.details), {}, app)


@for_developers
def edit_app(request: Request, developer: Visitor, form: Form) -> Response:
    """POST /developer/apps/{id}/edit: saves the changed fields."""
    app = _own(request, developer)
    if app is None:
        return _not_found(request)
    details = listing_form.listing_of(form)
    values = listing_form.form_values(details)
    errors = listing_form.check(details)
    if errors:
        return _form(request, values, errors, app, status=422)
    try:
        outcome = listings.update_app(
            request.app.state.store, developer.account_id, app.id, details
        )
    except DomainError as error:
        return _form(request, values, _errors_of(error), app, status=409)
    settled(request, outcome.position)
    return RedirectResponse(f"/developer/apps/{app.id}?done=saved", status_code=303)


# --- credentials ----------------------------------------------------------------------------
def _credentials(request: Request, app: AppListing, secret: str, *, created: bool) -> Response:
    """The client secret, shown in this answer only (never stored in clear, never again)."""
    return render(
        request,
        "developer/credentials.html",
        status=201 if created else 200,
        app=app,
        secret=secret,
        created=created,
        links=authorization_links(request, app),
    )


@for_developers
def rotate_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/apps/{id}/rotate-secret: what rotating does, before it is done."""
    app = _own(request, developer)
    if app is None:
        return _not_found(request)
    return render(request, "developer/rotate.html", app=app)


@for_developers
def rotate_secret(request: Request, developer: Visitor, form: Form) -> Response:
    """POST /developer/apps/{id}/rotate-secret: a new secret, shown once; the old one ends."""
    app = _own(request, developer)
    if app is None:
        return _not_found(request)
    store = request.app.state.store
    rotated = listings.rotate_client_secret(store, developer.account_id, app.id)
    return _credentials(request, listings.app(store, app.id), rotated.client_secret, created=False)


# --- installations and incidents ---------------------------------------------------------------
def _app_filter(request: Request) -> UUID | None:
    """The app in `?app=` (the queries only ever look among the developer's own)."""
    try:
        return UUID(request.query_params.get("app", ""))
    except ValueError:
        return None


@for_developers
def installations_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/installations: installations of my apps (no seller data once cancelled)."""
    apps = _app_names(request, developer)
    app_id = _app_filter(request)
    page = _page_number(request)
    now = request.app.state.store.clock.now()
    items, total = read(
        request,
        lambda conn: developer_apps.developer_installations(
            conn, developer.account_id, now, app_id=app_id, page=page, page_size=PAGE_SIZE
        ),
    )
    return render(
        request,
        "developer/installations.html",
        apps=apps,
        app_id=str(app_id or ""),
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
    )


@for_developers
def incidents_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/incidents: incidents of the installations of my apps."""
    apps = _app_names(request, developer)
    app_id = _app_filter(request)
    status = request.query_params.get("status", "")
    status = status if status in INCIDENT_FILTERS else ""
    page = _page_number(request)
    items, total = read(
        request,
        lambda conn: developer_apps.developer_incidents(
            conn,
            developer.account_id,
            app_id=app_id,
            status=status or None,
            page=page,
            page_size=PAGE_SIZE,
        ),
    )
    return render(
        request,
        "developer/incidents.html",
        apps=apps,
        app_id=str(app_id or ""),
        shown=status,
        filters=INCIDENT_FILTERS,
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
    )
