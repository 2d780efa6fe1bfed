"""Webhooks of my app (developer): subscribe, change, rotate the secret, delete, the
delivery log, replay, and a test event. Another developer's app or webhook is 404."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from api.auth import current_session
from api.pagination import Page, PageQuery
from api.routing import Call, Endpoint
from application import listings, webhooks
from domain.errors import DeliveryNotFound, WebhookNotFound
from domain.webhook import MAX_URL, TOPICS, Webhook, message_id
from projections import webhook_deliveries as log

TOPIC_LIST = ", ".join(TOPICS)


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=MAX_URL, description="https URL that receives the POSTs")
    topics: list[str] = Field(max_length=len(TOPICS), description=f"any of: {TOPIC_LIST}")


class WebhookChanges(BaseModel):
    """PATCH body: the fields sent replace the old values."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=MAX_URL)
    topics: list[str] | None = Field(default=None, max_length=len(TOPICS))


class RotateParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    overlap_hours: float = Field(
        default=24, ge=0, le=168, description="how long the previous secret keeps signing"
    )


class WebhookOut(BaseModel):
    id: UUID
    app_id: UUID
    url: str
    topics: list[str]
    created_at: datetime
    previous_secret_expires_at: datetime | None = None
    position: int | None = None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="shown only in this answer: keep it")


class RotatedSecretOut(BaseModel):
    id: UUID
    secret: str = Field(description="shown only in this answer: keep it")
    previous_secret_expires_at: datetime | None


class WebhookPage(Page[WebhookOut]):
    pass


class DeliveryOut(BaseModel):
    id: UUID
    message_id: str = Field(description="the `webhook-id` header: the same on every try")
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    latency_ms: float | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when pending: the next try")


class DeliveryDetail(DeliveryOut):
    data: dict[str, Any] = Field(description="the `data` of the delivered body")


class DeliveryPage(Page[DeliveryOut]):
    pass


class DeliveryParams(PageQuery):
    status: Literal["pending", "succeeded", "failed"] | None = None


class Accepted(BaseModel):
    delivery_id: UUID
    status: Literal["pending"] = "pending"
    position: int | None = None


def _webhook_out(webhook: Webhook, position: int | None) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "app_id": webhook.app_id,
        "url": webhook.url,
        "topics": webhook.topics,
        "created_at": webhook.created_at,
        "previous_secret_expires_at": webhook.previous_until,
        "position": position,
    }


def _row_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "previous_secret_expires_at": row["previous_secret_until"]}


def _delivery_out(row: dict[str, Any]) -> dict[str, Any]:
    pending = row["status"] == "pending"
    return {
        **row,
        "message_id": message_id(row["id"]),
        "next_attempt_at": row["next_attempt_at"] if pending else None,
        "data": row["payload"],
    }


async def _caller(call: Call) -> tuple[UUID, UUID]:
    """(developer, app) of a route on the developer's own app; 404 for anyone else's."""
    session = await current_session(call.request, role="developer")
    app_id = call.path_id("id", "app")
    await call.run(listings.own_app, call.state.store, session.account_id, app_id)
    return session.account_id, app_id


def _allow_loopback(call: Call) -> bool:
    return bool(call.state.settings.webhooks.allow_loopback)


async def subscribe(call: Call) -> WebhookCreated:
    """Subscribes my app to topics at a URL; the answer shows the signing secret, once."""
    developer_id, app_id = await _caller(call)
    body: NewWebhook = call.body
    made = await call.run(
        webhooks.subscribe,
        call.state.store,
        call.state.secret_box,
        developer_id,
        app_id,
        body.url,
        body.topics,
        allow_loopback=_allow_loopback(call),
    )
    await call.written(made.position)
    call.headers["Location"] = f"/v1/apps/{app_id}/webhooks/{made.id}"
    webhook = await call.run(webhooks.own_webhook, call.state.store, developer_id, app_id, made.id)
    return WebhookCreated.model_validate(
        {**_webhook_out(webhook, made.position), "secret": made.secret}
    )


async def list_webhooks(call: Call) -> WebhookPage:
    """My app's webhooks, oldest first (secrets are never shown again)."""
    _, app_id = await _caller(call)
    rows = await call.read(log.webhooks_of_app, app_id)
    items = [_row_out(r) for r in rows]
    return WebhookPage.model_validate(
        {"items": items, "total": len(items), "page": 1, "page_size": max(len(items), 1)}
    )


async def get_webhook(call: Call) -> WebhookOut:
    """One webhook of my app."""
    _, app_id = await _caller(call)
    webhook_id = call.path_id("webhook_id", "webhook")
    row = await call.read(log.webhook_of, app_id, webhook_id)
    if row is None:
        raise WebhookNotFound(f"webhook {webhook_id} not found")
    return WebhookOut.model_validate(_row_out(row))


async def change_webhook(call: Call) -> WebhookOut:
    """Changes the URL and/or topics."""
    developer_id, app_id = await _caller(call)
    webhook_id = call.path_id("webhook_id", "webhook")
    body: WebhookChanges = call.body
    outcome = await call.run(
        webhooks.change,
        call.state.store,
        developer_id,
        app_id,
        webhook_id,
        url=body.url,
        topics=body.topics,
        allow_loopback=_allow_loopback(call),
    )
    await call.written(outcome.position)
    webhook = await call.run(
        webhooks.own_webhook, call.state.store, developer_id, app_id, webhook_id
    )
    return WebhookOut.model_validate(_webhook_out(webhook, outcome.position))


async def delete_webhook(call: Call) -> Response:
    """Deletes the webhook: nothing more is sent to it (pending deliveries fail)."""
    developer_id, app_id = await _caller(call)
    webhook_id = call.path_id("webhook_id", "webhook")
    outcome = await call.run(webhooks.delete, call.state.store, developer_id, app_id, webhook_id)
    await call.written(outcome.position)
    return Response(status_code=204)


async def rotate_secret(call: Call) -> RotatedSecretOut:
    """A new signing secret, shown once; the previous one keeps signing for the overlap."""
    developer_id, app_id = await _caller(call)
    webhook_id = call.path_id("webhook_id", "webhook")
    p: RotateParams = call.query
    rotated = await call.run(
        webhooks.rotate_secret,
        call.state.store,
        call.state.secret_box,
        developer_id,
        app_id,
        webhook_id,
        timedelta(hours=p.overlap_hours),
    )
    await call.written(rotated.position)
    return RotatedSecretOut(
        id=rotated.id, secret=rotated.secret, previous_secret_expires_at=rotated.previous_until
    )


async def send_test(call: Call) -> Accepted:
    """Queues a `webhook.test` delivery to this webhook (whatever its topics)."""
    developer_id, app_id = await _caller(call)
    webhook_id = call.path_id("webhook_id", "webhook")
    requested = await call.run(
        webhooks.send_test, call.state.store, developer_id, app_id, webhook_id
    )
    await call.written(requested.position)
    return Accepted(delivery_id=requested.delivery_id, position=requested.position)


async def list_deliveries(call: Call) -> DeliveryPage:
    """The webhook's delivery log, newest first."""
    _, app_id = await _caller(call)
    webhook_id = call.path_id("webhook_id", "webhook")
    if await call.read(log.webhook_of, app_id, webhook_id) is None:
        raise WebhookNotFound(f"webhook {webhook_id} not found")
    p: DeliveryParams = call.query
    rows, total = await call.read(
        log.delivery_log, webhook_id, status=p.status, page=p.page, page_size=p.page_size
    )
    return DeliveryPage.model_validate(
        {
            "items": [_delivery_out(r) for r in rows],
            "total": total,
            "page": p.page,
            "page_size": p.page_size,
        }
    )


async def _delivery_row(call: Call, app_id: UUID) -> dict[str, Any]:
    webhook_id = call.path_id("webhook_id", "webhook")
    delivery_id = call.path_id("delivery_id", "delivery")
    if await call.read(log.webhook_of, app_id, webhook_id) is None:
        raise WebhookNotFound(f"webhook {webhook_id} not found")
    row: dict[str, Any] | None = await call.read(log.delivery_of, webhook_id, delivery_id)
    if row is None:
        raise DeliveryNotFound(f"delivery {delivery_id} not found")
    return row


async def get_delivery(call: Call) -> DeliveryDetail:
    """One delivery with the data it carries."""
    _, app_id = await _caller(call)
    return DeliveryDetail.model_validate(_delivery_out(await _delivery_row(call, app_id)))


async def replay_delivery(call: Call) -> Accepted:
    """Sends a delivery again now (same `webhook-id`, fresh retry window)."""
    developer_id, app_id = await _caller(call)
    row = await _delivery_row(call, app_id)
    outcome = await call.run(
        webhooks.replay,
        call.state.store,
        developer_id,
        app_id,
        row["webhook_id"],
        row["id"],
        known=True,
    )
    await call.written(outcome.position)
    return Accepted(delivery_id=row["id"], position=outcome.position)


HOOK = "/v1/apps/{id}/webhooks/{webhook_id}"
endpoints = [
    Endpoint("POST", "/v1/apps/{id}/webhooks", subscribe, "Subscribe my app to webhooks",
             "webhooks", body=NewWebhook, response=WebhookCreated, status=201,
             auth="developer"),
    Endpoint("GET", "/v1/apps/{id}/webhooks", list_webhooks, "My app's webhooks", "webhooks",
             response=WebhookPage, auth="developer"),
    Endpoint("GET", HOOK, get_webhook, "One webhook", "webhooks", response=WebhookOut,
             auth="developer"),
    Endpoint("PATCH", HOOK, change_webhook, "Change a webhook", "webhooks",
             body=WebhookChanges, response=WebhookOut, auth="developer"),
    Endpoint("DELETE", HOOK, delete_webhook, "Delete a webhook", "webhooks", status=204,
             auth="developer"),
    Endpoint("POST", HOOK + "/rotate-secret", rotate_secret, "Rotate a webhook's secret",
             "webhooks", query=RotateParams, response=RotatedSecretOut, auth="developer"),
    Endpoint("POST", HOOK + "/test", send_test, "Send a test event", "webhooks",
             response=Accepted, status=202, auth="developer"),
    Endpoint("GET", HOOK + "/deliveries", list_deliveries, "Delivery log", "webhooks",
             query=DeliveryParams, response=DeliveryPage, auth="developer"),
    Endpoint("GET", HOOK + "/deliveries/{delivery_id}", get_delivery, "One delivery",
             "webhooks", response=DeliveryDetail, auth="developer"),
    Endpoint("POST", HOOK + "/deliveries/{delivery_id}/replay", replay_delivery,
             "Replay a delivery", "webhooks", response=Accepted, status=202, auth="developer"),
]  # fmt: skip
