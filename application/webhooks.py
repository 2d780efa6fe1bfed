"""Webhook subscriptions (by an app's developer) and the webhook channel of the dispatcher.

Commands: subscribe, change, rotate the secret, delete, send a test event, replay a
delivery. `WebhookChannel` turns due deliveries into signed Standard Webhooks requests
(`webhook-id`, `webhook-timestamp`, `webhook-signature`) and hands them to a
`WebhookPoster` (the outbound HTTP adapter, consumers/webhook_http.py, which guards
against SSRF).
"""

from __future__ import annotations

import json
import secrets as random_secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from standardwebhooks.webhooks import Webhook as Signer

from application.dispatch import DueDelivery, RetryPolicy, Sent
from application.listings import own_app
from application.secret_box import SecretBox, SecretUnreadable
from application.store import Outcome, Store
from domain.delivery import Delivery
from domain.errors import DeliveryNotFound, WebhookNotFound
from domain.webhook import (
    DEFAULT_OVERLAP,
    Webhook,
    check_topics,
    check_url,
    delivery_id_for,
    message_id,
    webhook_secret_text,
)

SECRET_BYTES = 32
USER_AGENT = "AppStore-Webhooks/1.0"


@dataclass(frozen=True)
class SubscribedWebhook(Outcome):
    """A new subscription; its signing secret is shown this once."""

    secret: str = ""


@dataclass(frozen=True)
class RotatedSecret(Outcome):
    """A new signing secret (shown this once); the previous one signs until `previous_until`."""

    secret: str = ""
    previous_until: datetime | None = None


@dataclass(frozen=True)
class TestRequested(Outcome):
    """The test event asked for, and the id its delivery will have."""

    delivery_id: UUID | None = None


def new_secret() -> str:
    """A fresh signing secret in Standard Webhooks form (`whsec_` + base64)."""
    return webhook_secret_text(random_secrets.token_bytes(SECRET_BYTES))


def own_webhook(store: Store, developer_id: UUID, app_id: UUID, webhook_id: UUID) -> Webhook:
    """A live subscription of the developer's own app; anything else is not found."""
    own_app(store, developer_id, app_id)
    webhook = store.load(webhook_id, Webhook)
    if webhook is None or webhook.app_id != app_id or webhook.is_deleted:
        raise WebhookNotFound(f"webhook {webhook_id} not found")
    return webhook


def subscribe(
    store: Store,
    box: SecretBox,
    developer_id: UUID,
    app_id: UUID,
    url: str,
    topics: list[str],
    *,
    allow_loopback: bool = False,
) -> SubscribedWebhook:
    """Subscribes the developer's app to topics at a URL; the secret is shown once."""
    checked_url = check_url(url, allow_loopback=allow_loopback)
    checked_topics = check_topics(topics)
    own_app(store, developer_id, app_id)
    secret = new_secret()
    webhook = Webhook(
        app_id=app_id,
        developer_id=developer_id,
        url=checked_url,
        topics=checked_topics,
        sealed_secret=box.seal(secret),
        created_at=store.clock.now(),
    )
    return SubscribedWebhook(webhook.id, store.save(webhook), secret)


def change(
    store: Store,
    developer_id: UUID,
    app_id: UUID,
    webhook_id: UUID,
    *,
    url: str | None = None,
    topics: list[str] | None = None,
    allow_loopback: bool = False,
) -> Outcome:
    """Changes the URL and/or the topics (PATCH semantics)."""
    checked_url = None if url is None else check_url(url, allow_loopback=allow_loopback)
    checked_topics = None if topics is None else check_topics(topics)

    def attempt() -> Outcome:
        webhook = own_webhook(store, developer_id, app_id, webhook_id)
        webhook.change(
            checked_url or webhook.url,
            checked_topics if checked_topics is not None else webhook.topics,
            store.clock.now(),
        )
        return Outcome(webhook.id, store.save(webhook))

    return store.retrying(attempt)


def rotate_secret(
    store: Store,
    box: SecretBox,
    developer_id: UUID,
    app_id: UUID,
    webhook_id: UUID,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> RotatedSecret:
    """A new signing secret (shown once); the current one keeps signing for `overlap`."""
    secret = new_secret()
    sealed = box.seal(secret)

    def attempt() -> RotatedSecret:
        webhook = own_webhook(store, developer_id, app_id, webhook_id)
        webhook.rotate_secret(sealed, store.clock.now(), overlap)
        position = store.save(webhook)
        return RotatedSecret(webhook.id, position, secret, webhook.previous_until)

    return store.retrying(attempt)


def delete(store: Store, developer_id: UUID, app_id: UUID, webhook_id: UUID) -> Outcome:
    """Deletes the subscription: nothing more is sent to it."""

    def attempt() -> Outcome:
        webhook = own_webhook(store, developer_id, app_id, webhook_id)
        webhook.delete(store.clock.now())
        return Outcome(webhook.id, store.save(webhook))

    return store.retrying(attempt)


def send_test(store: Store, developer_id: UUID, app_id: UUID, webhook_id: UUID) -> TestRequested:
    """Asks for a `webhook.test` delivery to this subscription (whatever its topics)."""

    def attempt() -> TestRequested:
        webhook = own_webhook(store, developer_id, app_id, webhook_id)
        webhook.request_test(store.clock.now())
        position = store.save(webhook)
        assert position is not None
        return TestRequested(webhook.id, position, delivery_id_for(webhook.id, position))

    return store.retrying(attempt)


def replay(
    store: Store,
    developer_id: UUID,
    app_id: UUID,
    webhook_id: UUID,
    delivery_id: UUID,
    *,
    known: bool,
    policy: RetryPolicy | None = None,
) -> Outcome:
    """Sends a delivery again now, with the same `webhook-id` and a fresh retry window.

    `known` says whether the delivery log has this delivery for this subscription (the
    caller looked). One never tried yet is pending already: nothing to record.
    """
    own_webhook(store, developer_id, app_id, webhook_id)
    if not known:
        raise DeliveryNotFound(f"delivery {delivery_id} not found")
    retry_for = (policy or RetryPolicy()).retry_for

    def attempt() -> Outcome:
        delivery = store.load(delivery_id, Delivery)
        if delivery is None:
            return Outcome(delivery_id, None)
        now = store.clock.now()
        delivery.replay(now, now + retry_for)
        return Outcome(delivery.id, store.save(delivery))

    return store.retrying(attempt)


# --- the dispatcher's webhook channel -----------------------------------------------------------
@dataclass(frozen=True)
class WebhookRequest:
    """One signed POST to make."""

    url: str
    body: bytes
    headers: dict[str, str]


class WebhookPoster(Protocol):
    """Makes the POSTs (concurrently if it likes); one `Sent` per request, in order."""

    def post_all(self, requests: Sequence[WebhookRequest]) -> Sequence[Sent]: ...


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope(delivery: DueDelivery) -> bytes:
    """The body of a delivery: `{id, type, created_at, data}` as compact JSON (`data` is
    the stored JSON text, embedded as it is)."""
    head = json.dumps(
        {
            "id": message_id(delivery.id),
            "type": delivery.kind,
            "created_at": _iso(delivery.created_at),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f'{head[:-1]},"data":{delivery.payload}}}'.encode()


def signed_headers(msg_id: str, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """Standard Webhooks headers, one `v1,` signature per secret (space separated).

    The timestamp is the wall clock's, not the store's clock: receivers check it against
    theirs (the standardwebhooks library refuses anything more than 5 minutes off).
    """
    now = datetime.now(UTC)
    text = body.decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Signer(s).sign(msg_id, now, text) for s in secrets),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class WebhookChannel:
    """Deliveries as signed POSTs to their subscription's current URL."""

    name = "webhook"

    def __init__(self, store: Store, box: SecretBox, poster: WebhookPoster) -> None:
        self.store = store
        self.box = box
        self.poster = poster

    def send(self, deliveries: Sequence[DueDelivery]) -> list[Sent]:
        now = self.store.clock.now()
        webhooks: dict[UUID, Webhook | None] = {}
        secrets: dict[UUID, list[str] | SecretUnreadable] = {}
        requests: list[WebhookRequest] = []
        answers: list[Sent | None] = []
        for d in deliveries:
            if d.target not in webhooks:
                webhooks[d.target] = self.store.load(d.target, Webhook)
            webhook = webhooks[d.target]
            if webhook is None or webhook.is_deleted:
                answers.append(Sent(False, error="the webhook was deleted", final=True))
                continue
            if d.target not in secrets:
                try:
                    secrets[d.target] = [self.box.open(s) for s in webhook.sealed_secrets(now)]
                except SecretUnreadable as error:
                    secrets[d.target] = error
            opened = secrets[d.target]
            if isinstance(opened, SecretUnreadable):
                answers.append(Sent(False, error=str(opened)))
                continue
            body = envelope(d)
            headers = signed_headers(message_id(d.id), body, opened)
            requests.append(WebhookRequest(webhook.url, body, headers))
            answers.append(None)
        posted = iter(self.poster.post_all(requests) if requests else ())
        return [answer if answer is not None else next(posted) for answer in answers]
