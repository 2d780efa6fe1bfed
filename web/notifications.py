"""A seller's notifications: the list (all or unread, newest first, a page at a time), Mark
as read, Mark all as read. An expiry warning links to its installation and to Renew.

The list is the notifications read model (projections/notifications.py); marking goes
through application/notifications.py. Looked up through the signed-in seller: another
seller's notification is not found (404). The header's unread count is web/pages.py's.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from application import notifications as commands
from domain.notification import EXPIRY_WARNING
from projections import notifications
from web.access import for_sellers
from web.forms import Form, safe_next
from web.pages import message, read, render, settled
from web.session import Visitor

PAGE_SIZE = 20
# "Mark all as read" marks at most this many in one go (the newest unread first).
MARK_ALL_LIMIT = 500
FILTERS = {"": "All", "unread": "Unread"}
KINDS = {EXPIRY_WARNING: "Expiry warning"}
DONE = {
    "read": "Marked as read.",
    "all_read": "All your notifications are marked as read.",
}


def _page_number(request: Request) -> int:
    try:
        return max(1, min(10_000, int(request.query_params.get("page") or 1)))
    except ValueError:
        return 1


@for_sellers
def notifications_page(request: Request, seller: Visitor) -> Response:
    """GET /notifications: my notifications, newest first, with the number unread."""
    shown = request.query_params.get("show", "")
    shown = shown if shown in FILTERS else ""
    page = _page_number(request)
    items, total, unread = read(
        request,
        lambda conn: notifications.seller_notifications(
            conn, seller.account_id, unread=shown == "unread", page=page, page_size=PAGE_SIZE
        ),
    )
    done = DONE.get(request.query_params.get("done", ""))
    return render(
        request,
        "notifications.html",
        items=items,
        total=total,
        unread=unread,
        shown=shown,
        filters=FILTERS,
        kinds=KINDS,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        notice=done,
    )


def _back(form: Form, done: str) -> Response:
    """To the list the form was sent from (same filter and page), saying what was done."""
    back = safe_next(form["next"], "/notifications")
    joiner = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{joiner}done={done}", status_code=303)


@for_sellers
def mark_read(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /notifications/{id}/read: marks one of my notifications read."""
    try:
        notification_id = UUID(request.path_params["id"])
    except ValueError:
        notification_id = None
    found: dict[str, Any] | None = None
    if notification_id is not None:
        found = read(
            request,
            lambda conn: notifications.notification_of(conn, seller.account_id, notification_id),
        )
    if notification_id is None or found is None:
        text = "None of your notifications is at this address."
        return message(request, 404, "Page not found", text, Notifications="/notifications")
    outcome = commands.mark_read(
        request.app.state.store, seller.account_id, notification_id, known=True
    )
    settled(request, outcome.position)
    return _back(form, "read")


@for_sellers
def mark_all_read(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /notifications/read-all: marks every unread notification of mine read."""
    items, _, _ = read(
        request,
        lambda conn: notifications.seller_notifications(
            conn, seller.account_id, unread=True, page_size=MARK_ALL_LIMIT
        ),
    )
    position = commands.mark_all_read(
        request.app.state.store, seller.account_id, [item["id"] for item in items]
    )
    settled(request, position)
    return _back(form, "all_read")
