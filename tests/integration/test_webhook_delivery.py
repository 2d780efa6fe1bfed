"""Webhook deliveries end to end: the log → one delivery row → signed POSTs to a real
receiver on loopback, verified with the `standardwebhooks` library; retries, rotation,
several dispatchers, replays; on SQLite and the real PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from application import installations, sync_events, webhooks
from application.dispatch import Dispatcher, RetryPolicy
from application.secret_box import SecretBox
from application.store import Store
from application.webhooks import WebhookChannel
from appstore import processes
from appstore.settings import Settings
from consumers.webhook_http import GuardedPoster
from domain.clock import FixedClock
from domain.incident import SyncEvent
from domain.webhook import TOPICS, message_id
from projections.read_side import build_projector
from projections.runner import Projector
from projections.webhook_deliveries import WebhookDeliveries, deliveries, delivery_log
from tests import factories as f
from tests.webhook_receiver import Receiver

POLICY = RetryPolicy(first_delay=timedelta(seconds=5), lease=timedelta(seconds=30))


@dataclass
class Rig:
    store: Store
    projector: Projector
    box: SecretBox
    dispatcher: Dispatcher
    receiver: Receiver
    clock: FixedClock
    developer: UUID
    app: UUID

    def subscribe(self, path: str = "hooks", topics: tuple[str, ...] = TOPICS) -> tuple[UUID, str]:
        made = webhooks.subscribe(
            self.store,
            self.box,
            self.developer,
            self.app,
            self.receiver.url(path),
            list(topics),
            allow_loopback=True,
        )
        return made.id, made.secret

    def dispatcher_like(self) -> Dispatcher:
        return Dispatcher(self.store, self.dispatcher.due, self.dispatcher.channel, POLICY)

    def pump(self, rounds: int = 50) -> int:
        """Projects and dispatches until nothing is left to do now; the attempts made."""
        attempts = 0
        for _ in range(rounds):
            self.projector.catch_up()
            made = self.dispatcher.step()
            attempts += made
            if not made:
                self.projector.catch_up()
                return attempts
        raise AssertionError("still busy")

    def log(self, webhook_id: UUID) -> list[dict[str, Any]]:
        self.projector.catch_up()
        with self.projector.engine.connect() as conn:
            rows, _ = delivery_log(conn, webhook_id, page_size=100)
        return rows


@pytest.fixture
def rig(store: Store, settings: Settings, clock: FixedClock) -> Iterator[Rig]:
    receiver = Receiver().start()
    projector = build_projector(store, settings.database_url)
    box = SecretBox("test key")
    poster = GuardedPoster(timeout=5, allow_loopback=True, concurrency=4)
    channel = WebhookChannel(store, box, poster)
    dispatcher = Dispatcher(store, WebhookDeliveries(projector.engine), channel, POLICY)
    developer = f.developer(store)
    yield Rig(
        store, projector, box, dispatcher, receiver, clock, developer, f.app(store, developer)
    )
    receiver.stop()
    poster.close()
    projector.engine.dispose()


def test_each_event_of_a_subscribed_topic_arrives_signed_and_verifies(rig: Rig) -> None:
    webhook_id, secret = rig.subscribe()
    assert secret.startswith("whsec_")
    seller = f.seller(rig.store)
    installation = f.active_installation(rig.store, seller, rig.app)
    when = rig.clock.now()
    sync_events.record_sync_event(
        rig.store, SyncEvent("e1", installation, "failure", "orders", when, "E1", "boom")
    )
    sync_events.record_sync_event(
        rig.store, SyncEvent("e2", installation, "success", "orders", when)
    )
    installations.renew(rig.store, seller, installation, "90d")
    installations.cancel(rig.store, seller, installation)
    assert rig.pump() == 5
    received = rig.receiver.wait_for(5)
    assert all(r.verifies_with(secret) for r in received)
    bodies = [json.loads(r.body) for r in received]
    # Sent concurrently: the order of arrival is not promised (docs/webhooks.md).
    by_type = {b["type"]: b for b in bodies}
    assert sorted(by_type) == [
        "incident.raised",
        "incident.resolved",
        "installation.authorized",
        "installation.cancelled",
        "installation.renewed",
    ]
    authorized = by_type["installation.authorized"]
    assert authorized["data"]["installation_id"] == str(installation)
    assert authorized["data"]["app_id"] == str(rig.app)
    assert authorized["data"]["scopes"] == ["orders.read", "fulfillment.write"]
    assert by_type["incident.raised"]["data"]["error_code"] == "E1"
    assert by_type["installation.renewed"]["data"]["duration"] == "90d"
    # The payload id is the webhook-id header, and the delivery log shows each one delivered.
    assert all(b["id"] == r.message_id for b, r in zip(bodies, received, strict=True))
    log = rig.log(webhook_id)
    assert {row["status"] for row in log} == {"succeeded"}
    assert {message_id(row["id"]) for row in log} == {r.message_id for r in received}
    assert all(row["attempts"] == 1 and row["last_status_code"] == 200 for row in log)


def test_only_the_subscribed_topics_of_the_subscribed_app_are_sent(rig: Rig) -> None:
    rig.subscribe(topics=("installation.cancelled",))
    seller = f.seller(rig.store)
    other_app = f.app(rig.store)
    mine = f.active_installation(rig.store, seller, rig.app)
    theirs = f.active_installation(rig.store, seller, other_app)
    installations.cancel(rig.store, seller, theirs)
    assert rig.pump() == 0
    installations.cancel(rig.store, seller, mine)
    assert rig.pump() == 1
    (only,) = rig.receiver.wait_for(1)
    assert json.loads(only.body)["data"]["installation_id"] == str(mine)


def test_a_receiver_down_for_a_while_gets_everything_after_retries(rig: Rig) -> None:
    webhook_id, secret = rig.subscribe()
    rig.receiver.stop()
    seller = f.seller(rig.store)
    for _ in range(3):
        f.active_installation(rig.store, seller, f.app(rig.store, rig.developer))
    ids = [f.active_installation(rig.store, f.seller(rig.store), rig.app) for _ in range(4)]
    assert rig.pump() == 4  # each tried once, refused
    for row in rig.log(webhook_id):
        assert row["status"] == "pending" and row["attempts"] == 1
        assert "ConnectError" in row["last_error"]
    assert rig.pump() == 0  # nothing is due before the backoff ends
    rig.clock.advance(timedelta(seconds=6))
    assert rig.pump() == 4  # second try: still down
    rig.receiver.start()
    rig.clock.advance(timedelta(seconds=11))
    assert rig.pump() == 4
    received = rig.receiver.wait_for(4)
    assert len(received) == 4 and all(r.verifies_with(secret) for r in received)
    got = {json.loads(r.body)["data"]["installation_id"] for r in received}
    assert got == {str(i) for i in ids}
    log = rig.log(webhook_id)
    assert {(row["status"], row["attempts"]) for row in log} == {("succeeded", 3)}
    assert {message_id(row["id"]) for row in log} == {r.message_id for r in received}


def test_after_the_retry_window_a_delivery_fails_and_a_replay_sends_it_again(rig: Rig) -> None:
    webhook_id, secret = rig.subscribe()
    rig.receiver.status = 500
    f.active_installation(rig.store, f.seller(rig.store), rig.app)
    for _ in range(40):
        rig.pump()
        rig.clock.advance(timedelta(hours=1))
    (row,) = rig.log(webhook_id)
    assert row["status"] == "failed" and row["last_status_code"] == 500
    assert "receiver says no" in row["last_error"]
    tries = len(rig.receiver.received)
    assert tries == row["attempts"] > 5
    rig.clock.advance(timedelta(days=3))
    assert rig.pump() == 0  # failed stays failed
    rig.receiver.status = 200
    webhooks.replay(
        rig.store, rig.developer, rig.app, webhook_id, row["id"], known=True, policy=POLICY
    )
    assert rig.pump() == 1
    again = rig.receiver.received[-1]
    assert again.message_id == rig.receiver.received[0].message_id  # the same webhook-id
    assert again.verifies_with(secret)
    assert rig.log(webhook_id)[0]["status"] == "succeeded"


def test_during_a_rotation_both_secrets_sign_then_only_the_new_one(rig: Rig) -> None:
    webhook_id, old = rig.subscribe()
    rotated = webhooks.rotate_secret(
        rig.store, rig.box, rig.developer, rig.app, webhook_id, timedelta(hours=1)
    )
    new = rotated.secret
    assert new != old and rotated.previous_until == rig.clock.now() + timedelta(hours=1)
    f.active_installation(rig.store, f.seller(rig.store), rig.app)
    rig.pump()
    (during,) = rig.receiver.wait_for(1)
    assert during.verifies_with(old) and during.verifies_with(new)
    rig.clock.advance(timedelta(hours=2))
    f.active_installation(rig.store, f.seller(rig.store), rig.app)
    rig.pump()
    after = rig.receiver.wait_for(2)[-1]
    assert after.verifies_with(new) and not after.verifies_with(old)


def test_a_test_event_goes_to_one_webhook_whatever_its_topics(rig: Rig) -> None:
    webhook_id, secret = rig.subscribe(topics=("incident.raised",))
    other_id, _ = rig.subscribe(path="other", topics=("incident.raised",))
    requested = webhooks.send_test(rig.store, rig.developer, rig.app, webhook_id)
    rig.pump()
    (ping,) = rig.receiver.wait_for(1)
    assert ping.path == "hooks" and ping.verifies_with(secret)
    body = json.loads(ping.body)
    assert body["type"] == "webhook.test" and body["data"]["webhook_id"] == str(webhook_id)
    assert ping.message_id == message_id(requested.delivery_id)
    assert rig.log(other_id) == []


def test_a_deleted_webhook_gets_nothing_more(rig: Rig) -> None:
    webhook_id, _ = rig.subscribe()
    rig.receiver.stop()
    f.active_installation(rig.store, f.seller(rig.store), rig.app)
    rig.pump()
    webhooks.delete(rig.store, rig.developer, rig.app, webhook_id)
    rig.receiver.start()
    rig.clock.advance(timedelta(minutes=1))
    rig.pump()
    f.active_installation(rig.store, f.seller(rig.store), rig.app)
    rig.pump()
    assert rig.receiver.received == []
    (row,) = rig.log(webhook_id)
    assert row["status"] == "failed" and row["last_error"] == "the webhook was deleted"


def test_two_dispatchers_never_send_the_same_attempt(rig: Rig) -> None:
    rig.subscribe()
    sellers = [f.seller(rig.store) for _ in range(30)]
    for seller in sellers:
        f.active_installation(rig.store, seller, rig.app)
    rig.projector.catch_up()
    rig.receiver.delay = 0.01
    racers = [rig.dispatcher, rig.dispatcher_like()]
    done = threading.Event()

    def race(dispatcher: Dispatcher) -> None:
        while not done.is_set():
            dispatcher.step()

    threads = [threading.Thread(target=race, args=(d,)) for d in racers]
    for thread in threads:
        thread.start()
    try:
        rig.receiver.wait_for(30, timeout=60)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=30)
    counts = Counter(r.message_id for r in rig.receiver.received)
    assert len(counts) == 30 and set(counts.values()) == {1}


def test_a_replay_of_the_deliveries_read_model_sends_nothing_again(
    rig: Rig, settings: Settings
) -> None:
    webhook_id, _ = rig.subscribe()
    for _ in range(5):
        f.active_installation(rig.store, f.seller(rig.store), rig.app)
    assert rig.pump() == 5
    before = rig.log(webhook_id)
    # Half rebuilt: the rows are back, the outcomes not yet: still nothing is sent.
    rig.projector.reset("webhook_deliveries")
    while rig.projector.step("webhook_deliveries", limit=5).applied:
        with rig.projector.engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.func.count()).where(deliveries.c.status == "pending")
            ).scalar()
        if pending:
            break
    assert pending
    fresh = rig.dispatcher_like()
    assert fresh.step() == 0
    processes.replay(settings, "webhook_deliveries")
    assert rig.log(webhook_id) == before
    assert rig.pump() == 0 and fresh.step() == 0
    assert len(rig.receiver.received) == 5


def test_a_redirect_is_not_followed(rig: Rig) -> None:
    webhook_id, _ = rig.subscribe(path="redirect")
    f.active_installation(rig.store, f.seller(rig.store), rig.app)
    rig.pump()
    assert len(rig.receiver.on("redirect")) == 1
    assert rig.receiver.on("target") == []
    (row,) = rig.log(webhook_id)
    assert row["status"] == "pending" and row["last_status_code"] == 307
    assert "not followed" in row["last_error"]


def test_the_webhook_timestamp_is_the_wall_clock(rig: Rig) -> None:
    rig.subscribe()
    rig.clock.set(datetime(2020, 1, 1, tzinfo=UTC))  # the store's clock is not the receiver's
    f.active_installation(rig.store, f.seller(rig.store), rig.app)
    rig.pump()
    (got,) = rig.receiver.wait_for(1)
    assert abs(int(got.headers["webhook-timestamp"]) - got.at) < 5


def test_consent_changes_arrive_as_scopes_changed_with_the_scopes_granted_now(rig: Rig) -> None:
    app = f.app(
        rig.store,
        rig.developer,
        scopes=["orders.read"],
        optional_scopes=["inventory.read", "customers.read"],
    )
    topics = ("installation.authorized", "installation.scopes_changed")
    made = webhooks.subscribe(
        rig.store, rig.box, rig.developer, app, rig.receiver.url(), list(topics),
        allow_loopback=True,
    )  # fmt: skip
    webhooks.subscribe(
        rig.store, rig.box, rig.developer, app, rig.receiver.url("other"), list(topics[:1]),
        allow_loopback=True,
    )  # fmt: skip
    seller = f.seller(rig.store)
    installation = installations.install(
        rig.store, seller, app, "30d", "ops@shop.example.com", "+14155550101"
    ).id
    # The seller leaves customers.read out, grants it later, then takes inventory.read back.
    installations.authorize(rig.store, seller, installation, ["orders.read", "inventory.read"])
    rig.clock.advance(timedelta(minutes=1))
    installations.grant_scopes(rig.store, seller, installation, ["customers.read"])
    rig.clock.advance(timedelta(minutes=1))
    installations.revoke_scope(rig.store, seller, installation, "inventory.read")
    assert rig.pump() == 4
    rig.receiver.wait_for(4)
    received = rig.receiver.on("hooks")
    assert all(r.verifies_with(made.secret) for r in received)
    bodies = sorted((json.loads(r.body) for r in received), key=lambda b: b["created_at"])
    assert [b["type"] for b in bodies] == ["installation.authorized", *topics[1:] * 2]
    authorized, granted, revoked = (b["data"] for b in bodies)
    assert authorized["scopes"] == ["orders.read", "inventory.read"]  # what was consented to
    assert (granted["granted"], granted["revoked"]) == (["customers.read"], [])
    assert granted["scopes"] == ["orders.read", "inventory.read", "customers.read"]
    assert (revoked["granted"], revoked["revoked"]) == ([], ["inventory.read"])
    assert revoked["scopes"] == ["orders.read", "customers.read"]
    assert revoked["installation_id"] == str(installation) and revoked["app_id"] == str(app)
    assert revoked["seller_id"] == str(seller)
    assert revoked["changed_at"] == bodies[2]["created_at"]
    # A subscription without the topic hears nothing of it.
    assert [json.loads(r.body)["type"] for r in rig.receiver.on("other")] == [
        "installation.authorized"
    ]
