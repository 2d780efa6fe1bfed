"""The delivery log of one webhook in the developer console: each delivery's status,
attempts, last answer and latency (a page at a time, by status), one delivery with its
payload and a Replay button, and Send a test event.

Reads the webhooks read model; commands are application/webhooks.py's, called as
api/webhooks.py calls them. The webhook is looked up through the signed-in developer's
app (web/webhooks.py), so another developer's webhook or delivery is not found (404).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from application import webhooks
from domain.app_listing import AppListing
from domain.errors import WebhookNotFound
from domain.webhook import TOPIC_MEANINGS, message_id
from projections import webhook_deliveries as log
from web.access import for_developers
from web.forms import Form
from web.pages import read, render, settled
from web.session import Visitor
from web.webhooks import back_to, not_found, page_number, path_uuid, with_webhook

DELIVERIES_SHOWN = 25
STATUS_FILTERS = {"": "All", "pending": "Pending", "succeeded": "Delivered", "failed": "Failed"}
DONE = {
    "saved": "The webhook is saved: new deliveries go to its URL, for its topics.",
    "test": "A test event is on its way: it shows in the delivery log below.",
    "replayed": "The delivery is sent again now, with the same webhook-id.",
}


@for_developers
@with_webhook
def webhook_page(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any]
) -> Response:
    """GET /developer/apps/{id}/webhooks/{webhook}: the webhook and its delivery log."""
    status = request.query_params.get("status", "")
    status = status if status in STATUS_FILTERS else ""
    page = page_number(request.query_params.get("page"))
    items, total = read(
        request,
        lambda conn: log.delivery_log(
            conn, webhook["id"], status=status or None, page=page, page_size=DELIVERIES_SHOWN
        ),
    )
    done = DONE.get(request.query_params.get("done", ""))
    return render(
        request,
        "developer/webhooks/webhook.html",
        app=app,
        webhook=webhook,
        topic_meanings=TOPIC_MEANINGS,
        deliveries=items,
        total=total,
        shown=status,
        filters=STATUS_FILTERS,
        page=page,
        pages=max(1, -(-total // DELIVERIES_SHOWN)),
        now=request.app.state.store.clock.now(),
        notice=done,
    )


@for_developers
@with_webhook
def send_test(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any], form: Form
) -> Response:
    """POST /developer/apps/{id}/webhooks/{webhook}/test: a `webhook.test` delivery."""
    store = request.app.state.store
    try:
        requested = webhooks.send_test(store, developer.account_id, app.id, webhook["id"])
    except WebhookNotFound:
        return not_found(request)
    settled(request, requested.position)
    return back_to(app, webhook, "test", "#deliveries")


def _delivery(request: Request, webhook: dict[str, Any]) -> dict[str, Any] | None:
    delivery_id = path_uuid(request.path_params["delivery"])
    if delivery_id is None:
        return None
    return read(request, lambda conn: log.delivery_of(conn, webhook["id"], delivery_id))


@for_developers
@with_webhook
def delivery_page(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any]
) -> Response:
    """GET …/deliveries/{delivery}: one delivery, what happened to it, and its payload."""
    delivery = _delivery(request, webhook)
    if delivery is None:
        return not_found(request)
    done = DONE.get(request.query_params.get("done", ""))
    return render(
        request,
        "developer/webhooks/delivery.html",
        app=app,
        webhook=webhook,
        delivery=delivery,
        message_id=message_id(delivery["id"]),
        payload=json.dumps(delivery["payload"], indent=2, ensure_ascii=False),
        notice=done,
    )


@for_developers
@with_webhook
def replay(
    request: Request, developer: Visitor, app: AppListing, webhook: dict[str, Any], form: Form
) -> Response:
    """POST …/deliveries/{delivery}/replay: sent again now (same webhook-id)."""
    delivery = _delivery(request, webhook)
    if delivery is None:
        return not_found(request)
    try:
        outcome = webhooks.replay(
            request.app.state.store,
            developer.account_id,
            app.id,
            webhook["id"],
            delivery["id"],
            known=True,
        )
    except WebhookNotFound:
        return not_found(request)
    settled(request, outcome.position)
    path = f"/developer/apps/{app.id}/webhooks/{webhook['id']}/deliveries/{delivery['id']}"
    return RedirectResponse(f"{path}?done=replayed", status_code=303)
