"""The developer console's webhooks: per app, its subscriptions; subscribe (the signing
secret shown once), change the URL and topics, delete (after a confirmation), rotate the
secret (shown once; the overlap explained). The delivery log is web/webhook_log.py.

Commands are application/webhooks.py's, called as api/webhooks.py calls them; lists read
the webhooks read model. Everything is looked up through the signed-in developer: another
developer's app or webhook is not found (404).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from application import listings, webhooks
from domain.app_listing import AppListing
from domain.errors import AppNotFound, DomainError, InvalidInput, WebhookNotFound
from domain.webhook import TOPIC_MEANINGS, check_topics, check_url
from projections import developer_apps
from projections import webhook_deliveries as log
from projections.webhook_console import webhooks_of_apps
from web.access import for_developers
from web.forms import Form
from web.pages import message, read, render, settled
from web.session import Visitor

PAGE_SIZE = 20
# How long the previous secret keeps signing after a rotation (hours → what it means).
OVERLAPS = {
    "0": "No overlap: the previous secret stops signing at once",
    "1": "1 hour",
    "24": "24 hours",
    "72": "3 days",
    "168": "7 days (the longest)",
}
DEFAULT_OVERLAP = "24"
DONE = {"deleted": "The webhook is deleted: nothing more is sent to it."}


def page_number(value: str | None) -> int:
    """A page number from the query (1 when missing or not a number)."""
    try:
        return max(1, min(10_000, int(value or 1)))
    except ValueError:
        return 1


def path_uuid(value: str) -> UUID | None:
    """An id from the path, or None when it is not one."""
    try:
        return UUID(value)
    except ValueError:
        return None


def _allow_loopback(request: Request) -> bool:
    return bool(request.app.state.settings.webhooks.allow_loopback)


def own_app(request: Request, developer: Visitor) -> AppListing | None:
    """The developer's app named in the path, or None."""
    app_id = path_uuid(request.path_params["id"])
    if app_id is None:
        return None
    try:
        return listings.own_app(request.app.state.store, developer.account_id, app_id)
    except AppNotFound:
        return None


def own_webhook(request: Request, app: AppListing) -> dict[str, Any] | None:
    """The app's live webhook named in the path (its read-model row), or None."""
    webhook_id = path_uuid(request.path_params["webhook"])
    if webhook_id is None:
        return None
    return read(request, lambda conn: log.webhook_of(conn, app.id, webhook_id))


def not_found(request: Request) -> Response:
    """404: no webhook (or app, or delivery) of this developer is at this address."""
    text = "None of your apps' webhooks is at this address."
    return message(request, 404, "Page not found", text, **{"Webhooks": "/developer/webhooks"})


Handler = Callable[..., Response]


def with_webhook(handler: Handler) -> Handler:
    """A page of one webhook of the developer's app: called with (app, webhook row)."""

    @functools.wraps(handler)
    def found(request: Request, developer: Visitor, *args: Any) -> Response:
        app = own_app(request, developer)
        webhook = None if app is None else own_webhook(request, app)
        if app is None or webhook is None:
            return not_found(request)
        return handler(request, developer, app, webhook, *args)

    return found


# --- lists ------------------------------------------------------------------------------------
@for_developers
def overview_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/webhooks: my apps (a page at a time), each with its webhooks."""
    page = page_number(request.query_params.get("page"))
    now = request.app.state.store.clock.now()

    def query(conn: Any) -> tuple[list[dict[str, Any]], int, dict[UUID, list[dict[str, Any]]]]:
        apps, total = developer_apps.developer_apps(
            conn, developer.account_id, now, page=page, page_size=PAGE_SIZE
        )
        return apps, total, webhooks_of_apps(conn, [a["id"] for a in apps])

    apps, total, hooks = read(request, query)
    return render(
        request,
        "developer/webhooks/overview.html",
        apps=apps,
        hooks=hooks,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
    )


@for_developers
def app_webhooks_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/apps/{id}/webhooks: the app's webhooks with their latest delivery."""
    app = own_app(request, developer)
    if app is None:
        return not_found(request)
    hooks = read(request, lambda conn: webhooks_of_apps(conn, [app.id]))[app.id]
    done = DONE.get(request.query_params.get("done", ""))
    return render(request, "developer/webhooks/list.html", app=app, hooks=hooks, notice=done)


# --- subscribe and change -----------------------------------------------------------------------
def _field_errors(url: str, topics: list[str], allow_loopback: bool) -> dict[str, str]:
    """Each field's error at once (the commands check the same rules, one at a time)."""
    errors: dict[str, str] = {}
    checks: list[Callable[[], object]] = [
        lambda: check_url(url, allow_loopback=allow_loopback),
        lambda: check_topics(topics),
    ]
    for check in checks:
        try:
            check()
        except DomainError as error:
            errors.update(_errors_of(error))
    return errors


def _errors_of(error: DomainError) -> dict[str, str]:
    """`{field: sentence}` for a refused URL or topic list."""
    if isinstance(error, InvalidInput) and error.field in ("url", "topics"):
        reason = error.reason.strip().rstrip(".")
        if error.field == "url":
            return {"url": f"This URL {reason}."}
        return {"topics": f"{reason[:1].upper()}{reason[1:]}."}
    return {"url": error.detail}


def _form(
    request: Request,
    app: AppListing,
    values: dict[str, Any],
    errors: dict[str, str],
    webhook: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "developer/webhooks/form.html",
        status=status,
        app=app,
        webhook=webhook,
        values=values,
        errors=errors,
        topic_meanings=TOPIC_MEANINGS,
        allow_loopback=_allow_loopback(request),
    )


@for_developers
def new_page(request: Request, developer: Visitor) -> Response:
    """GET /developer/apps/{id}/webhooks/new: URL and topics to subscribe to."""
    app = own_app(request, developer)
    if app is None:
        return not_found(request)
    return _form(request, app, {"url": "", "topics": []}, {})


@for_developers
def create(request: Request, developer: Visitor, form: Form) -> Response:
    """POST /developer/apps/{id}/webhooks/new: subscribes, then shows the secret this once."""
    app = own_app(request, developer)
    if app is None:
        return not_found(request)
    url, topics = form["url"], form.all("topics")
    values: dict[str, Any] = {"url": url, "topics": topics}
    loopback = _allow_loopback(request)
    errors = _field_errors(url, topics, loopback)
    if errors:
        return _form(request, app, values, errors, status=422)
    store = request.app.state.store
    try:
        made = webhooks.subscribe(
            store,
            request.app.state.secret_box,
            developer.account_id,
            app.id,
            url,
            topics,
            allow_loopback=loopback,
        )
    except DomainError as error:
        return _form(request, app, values, _errors_of(error), status=422)
    settled(request, made.position)
    webhook = {"id": made.id, **values}
    return render(
        request,
        "developer/webhooks/secret.html",
        status=201,
        app=app,
        webhook=webhook,
        secret=made.secret,
        created=True,
        previous_until=None,
    )


@for_developers
@with_webhook
def edit_page(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any]
) -> Response:
    """GET /developer/apps/{id}/webhooks/{webhook}/edit: the URL and topics to change."""
    values = {"url": webhook["url"], "topics": list(webhook["topics"])}
    return _form(request, app, values, {}, webhook)


@for_developers
@with_webhook
def edit(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any], form: Form
) -> Response:
    """POST /developer/apps/{id}/webhooks/{webhook}/edit: saves the URL and topics."""
    url, topics = form["url"], form.all("topics")
    values: dict[str, Any] = {"url": url, "topics": topics}
    loopback = _allow_loopback(request)
    errors = _field_errors(url, topics, loopback)
    if errors:
        return _form(request, app, values, errors, webhook, status=422)
    try:
        outcome = webhooks.change(
            request.app.state.store,
            developer.account_id,
            app.id,
            webhook["id"],
            url=url,
            topics=topics,
            allow_loopback=loopback,
        )
    except DomainError as error:
        return _form(request, app, values, _errors_of(error), webhook, status=422)
    settled(request, outcome.position)
    return back_to(app, webhook, "saved")


def back_to(app: AppListing, webhook: dict[str, Any], done: str, anchor: str = "") -> Response:
    """To the webhook's page (its delivery log), saying what was `done`."""
    path = f"/developer/apps/{app.id}/webhooks/{webhook['id']}?done={done}{anchor}"
    return RedirectResponse(path, status_code=303)


# --- delete and rotate ------------------------------------------------------------------------
@for_developers
@with_webhook
def delete_page(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any]
) -> Response:
    """GET /developer/apps/{id}/webhooks/{webhook}/delete: what deleting does, first."""
    return render(request, "developer/webhooks/delete.html", app=app, webhook=webhook)


@for_developers
@with_webhook
def delete(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any], form: Form
) -> Response:
    """POST /developer/apps/{id}/webhooks/{webhook}/delete: nothing more is sent to it."""
    store = request.app.state.store
    try:
        outcome = webhooks.delete(store, developer.account_id, app.id, webhook["id"])
    except WebhookNotFound:  # deleted meanwhile (another tab)
        return not_found(request)
    settled(request, outcome.position)
    return RedirectResponse(f"/developer/apps/{app.id}/webhooks?done=deleted", status_code=303)


def _rotate_form(
    request: Request, app: AppListing, webhook: dict[str, Any], chosen: str, errors: dict[str, str]
) -> Response:
    return render(
        request,
        "developer/webhooks/rotate.html",
        status=422 if errors else 200,
        app=app,
        webhook=webhook,
        overlaps=[(hours, words, None) for hours, words in OVERLAPS.items()],
        chosen=chosen,
        errors=errors,
    )


@for_developers
@with_webhook
def rotate_page(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any]
) -> Response:
    """GET /developer/apps/{id}/webhooks/{webhook}/rotate-secret: the overlap, explained."""
    return _rotate_form(request, app, webhook, DEFAULT_OVERLAP, {})


@for_developers
@with_webhook
def rotate_secret(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any], form: Form
) -> Response:
    """POST …/rotate-secret: a new secret, shown once; the previous one signs for the overlap."""
    chosen = form["overlap_hours"]
    if chosen not in OVERLAPS:
        errors = {"overlap_hours": "Choose how long the previous secret keeps signing."}
        return _rotate_form(request, app, webhook, chosen, errors)
    try:
        rotated = webhooks.rotate_secret(
            request.app.state.store,
            request.app.state.secret_box,
            developer.account_id,
            app.id,
            webhook["id"],
            timedelta(hours=int(chosen)),
        )
    except WebhookNotFound:
        return not_found(request)
    settled(request, rotated.position)
    return render(
        request,
        "developer/webhooks/secret.html",
        app=app,
        webhook=webhook,
        secret=rotated.secret,
        created=False,
        previous_until=rotated.previous_until if chosen != "0" else None,
    )
