"""The sync-event consumer on a real Kafka broker and real PostgreSQL: reports become
incidents exactly once, poison goes to the DLQ with a reason, and the loop goes on."""

from __future__ import annotations

import json
import random
import uuid
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from kafka.producer import KafkaProducer

from application import accounts, installations
from application.store import Store
from consumers.config import WorkerConfig
from consumers.messages import PoisonMessage, parse_message
from consumers.producer import SyncEventPublisher
from consumers.redrive import redrive
from tests import factories as f
from tests.consumer_support import (
    consumer_settings,
    create_topic,
    failures_recorded,
    kafka_bootstrap,
    live_installations,
    new_store,
    read_topic,
    running_worker,
    unique_topic,
    wait_until,
)

__all__ = ["kafka_bootstrap"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = unique_topic("sync")
    create_topic(kafka_bootstrap, name, partitions=3)
    return name


@pytest.fixture
def pg_store(postgres_url: str, kafka_bootstrap: str, topic: str) -> Any:
    store = new_store(consumer_settings(postgres_url, kafka_bootstrap, topic))
    yield store
    store.close()


@pytest.fixture
def config(kafka_bootstrap: str, topic: str) -> WorkerConfig:
    return WorkerConfig(
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        group_id=unique_topic("group"),
        partitions=3,
    )


def _report(installation: UUID, **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "installation_id": str(installation),
        "kind": "failure",
        "area": "orders",
        "error_code": "SKU_NOT_FOUND",
        "message": "3 orders reference unknown SKUs",
        "object_ids": ["o-1", "o-2"],
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body.update(fields)
    return json.dumps(body).encode()


def test_a_failure_raises_an_incident(pg_store: Store, config: WorkerConfig) -> None:
    [installation_id] = live_installations(pg_store, 1)
    with SyncEventPublisher(config.bootstrap_servers, topic=config.topic) as publisher:
        publisher.publish_failure(
            installation_id,
            area="inventory",
            error_code="STOCK_PUSH_FAILED",
            message="Shopify rejected 2 stock levels",
            object_ids=["sku-1", "sku-2"],
        )
    with running_worker(pg_store, config):
        incidents = wait_until(
            lambda: list(installations.installation(pg_store, installation_id).incidents.values()),
            30,
            "the incident",
        )
    [incident] = incidents
    assert (incident.area, incident.error_code) == ("inventory", "STOCK_PUSH_FAILED")
    assert incident.message == "Shopify rejected 2 stock levels"
    assert incident.object_ids == ["sku-1", "sku-2"]
    assert incident.count == 1
    assert incident.status.value == "open"


def test_repeated_failures_group_and_count_and_a_success_resolves(
    pg_store: Store, config: WorkerConfig
) -> None:
    [installation_id] = live_installations(pg_store, 1)
    start = datetime.now(UTC) - timedelta(minutes=10)
    with SyncEventPublisher(config.bootstrap_servers, topic=config.topic) as publisher:
        for minute in range(4):
            publisher.publish_failure(
                installation_id,
                area="orders",
                error_code="TIMEOUT",
                occurred_at=start + timedelta(minutes=minute),
            )
        publisher.publish_failure(
            installation_id, area="fulfillment", error_code="NO_CARRIER", occurred_at=start
        )
    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.applied == 5, 30, "5 failures applied")
        incidents = {
            i.area: i
            for i in installations.installation(pg_store, installation_id).incidents.values()
        }
        assert incidents["orders"].count == 4
        assert incidents["orders"].first_seen == start
        assert incidents["orders"].last_seen == start + timedelta(minutes=3)
        assert incidents["fulfillment"].count == 1

        with SyncEventPublisher(config.bootstrap_servers, topic=config.topic) as publisher:
            publisher.publish_success(installation_id, area="orders")
        wait_until(
            lambda: (
                installations.installation(pg_store, installation_id)
                .incidents[incidents["orders"].id]
                .status.value
                == "resolved"
            ),
            30,
            "the orders incident resolved",
        )
    after = installations.installation(pg_store, installation_id).incidents
    assert after[incidents["fulfillment"].id].status.value == "open"  # another area
    assert after[incidents["orders"].id].resolution == "sync_succeeded"


def test_the_same_message_delivered_twice_has_one_effect(
    pg_store: Store, config: WorkerConfig
) -> None:
    [installation_id] = live_installations(pg_store, 1)
    value = _report(installation_id, event_id="run-7-orders")
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    key = str(installation_id).encode()
    try:
        producer.send(config.topic, key=key, value=value)
        producer.send(config.topic, key=key, value=value)
        producer.flush(timeout=30)
        with running_worker(pg_store, config) as running:
            wait_until(lambda: running.records_seen == 2, 30, "both copies consumed")
            # A third copy after the first two were committed: still no effect.
            producer.send(config.topic, key=key, value=value)
            producer.flush(timeout=30)
            wait_until(lambda: running.records_seen == 3, 30, "the third copy consumed")
    finally:
        producer.close(timeout=10)
    assert (running.applied, running.duplicates) == (1, 2)
    [incident] = installations.installation(pg_store, installation_id).incidents.values()
    assert incident.count == 1


def test_poison_goes_to_the_dlq_with_reasons_and_every_good_report_applies(
    pg_store: Store, config: WorkerConfig
) -> None:
    installation_ids = live_installations(pg_store, 12)
    good, cancelled = installation_ids[:10], installation_ids[10:]
    for installation_id in cancelled:
        seller_id = installations.installation(pg_store, installation_id).seller_id
        installations.cancel(pg_store, seller_id, installation_id)
    rng = random.Random(6)
    messages: list[tuple[bytes, bytes, str | None]] = []  # key, value, expected DLQ reason
    for n in range(1000):
        installation_id = good[n % len(good)]
        area = ("orders", "inventory", "fulfillment")[n % 3]
        value = _report(installation_id, area=area, error_code=f"E{n % 4}")
        messages.append((str(installation_id).encode(), value, None))
    for n in range(1000):
        kind = n % 4
        if kind == 0:
            value = rng.choice([b"{not json", b"\xff\xfe", b"[1, 2", b"null}"]) + str(n).encode()
            reason = "invalid_json"
        elif kind == 1:
            broken = rng.choice(
                [
                    {"kind": "explosion"},
                    {"installation_id": "not-a-uuid"},
                    {"occurred_at": "2026-11-25T20:00:00"},  # no timezone
                    {"error_code": ""},
                    {"area": ""},
                ]
            )
            value = _report(good[0], **broken)
            reason = "schema_violation"
        elif kind == 2:
            value = _report(uuid.uuid4())
            reason = "unknown_installation"
        else:
            value = _report(cancelled[n % 2])
            reason = "installation_cancelled"
        messages.append((f"poison-{n}".encode(), value, reason))
    rng.shuffle(messages)

    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all", linger_ms=5)
    try:
        for key, value, _ in messages:
            producer.send(config.topic, key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)

    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.records_seen == 2000, 90, "2,000 messages handled", 0.25)
    assert running.applied == 1000
    assert failures_recorded(pg_store, good) == 1000

    dead = read_topic(config.bootstrap_servers, config.dlq_topic, expected=1000)
    assert len(dead) == 1000
    expected = {(key, value): reason for key, value, reason in messages if reason}
    got: dict[tuple[bytes, bytes], str] = {}
    for record in dead:
        headers = {name: data.decode() for name, data in record.headers}
        assert headers["source_topic"] == config.topic
        assert int(headers["source_offset"]) >= 0
        assert headers["detail"]
        got[(record.key, record.value)] = headers["reason"]  # original key and bytes
    assert got == expected
    assert Counter(got.values()) == {
        "invalid_json": 250,
        "schema_violation": 250,
        "unknown_installation": 250,
        "installation_cancelled": 250,
    }


def test_the_message_model_names_what_is_wrong() -> None:
    with pytest.raises(PoisonMessage) as bad:
        parse_message(b'{"event_id": "e", "kind": "failure"}')
    assert bad.value.reason == "schema_violation"
    assert "installation_id" in bad.value.detail
    with pytest.raises(PoisonMessage) as failure_without_code:
        parse_message(_report(uuid.uuid4(), error_code=""))
    assert "error_code" in failure_without_code.value.detail
    with pytest.raises(PoisonMessage) as not_json:
        parse_message(None)
    assert not_json.value.reason == "invalid_json"
    newer = json.loads(_report(uuid.uuid4(), kind="success", error_code=""))
    newer["schema_version"] = 2  # unknown fields from newer connectors are ignored
    assert parse_message(json.dumps(newer).encode()).kind == "success"


def test_reports_for_a_pending_installation_or_another_app_are_dead_lettered(
    pg_store: Store, config: WorkerConfig
) -> None:
    [active] = live_installations(pg_store, 1)
    seller_id = f.seller(pg_store)
    pending = installations.install(
        pg_store, seller_id, f.app(pg_store), "30d", "ops@shop.example.com", "+14155550101"
    ).id  # never authorized
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    try:
        producer.send(config.topic, key=b"p", value=_report(pending))
        producer.send(config.topic, key=b"a", value=_report(active, app_id=str(uuid.uuid4())))
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.records_seen == 2, 30, "both reports handled")
    dead = read_topic(config.bootstrap_servers, config.dlq_topic, expected=2)
    reasons = {r.key: dict(r.headers)["reason"].decode() for r in dead}
    assert reasons == {b"p": "installation_not_active", b"a": "unknown_installation"}
    assert not installations.installation(pg_store, active).incidents


def test_a_failure_on_kafka_is_visible_in_my_incidents_over_http(
    pg_store: Store, config: WorkerConfig, postgres_url: str
) -> None:
    from appstore.bootstrap import create_app

    with warnings.catch_warnings():  # starlette's notice about httpx, as in test_api.py
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    seller_id = f.seller(pg_store)
    installation_id = f.active_installation(pg_store, seller_id, f.app(pg_store), "unlimited")
    token = accounts.start_session(
        pg_store, accounts.account(pg_store, seller_id).email, f.PASSWORD
    ).token
    with SyncEventPublisher(config.bootstrap_servers, topic=config.topic) as publisher:
        publisher.publish_failure(
            installation_id, area="orders", error_code="SKU_NOT_FOUND", object_ids=["o-9"]
        )
    settings = consumer_settings(postgres_url, config.bootstrap_servers, config.topic)
    app = create_app(settings, store=pg_store)
    try:
        with running_worker(pg_store, config), TestClient(app) as client:

            def my_incidents() -> list[dict[str, Any]]:
                r = client.get("/v1/me/incidents", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text
                return list(r.json()["items"])

            [item] = wait_until(my_incidents, 30, "the incident in /v1/me/incidents", 0.2)
    finally:
        app.state.projector.engine.dispose()
    assert item["installation_id"] == str(installation_id)
    assert (item["area"], item["error_code"], item["count"]) == ("orders", "SKU_NOT_FOUND", 1)
    assert item["status"] == "open" and item["object_ids"] == ["o-9"]


def test_a_redrive_applies_dead_letters_once_their_cause_is_fixed(
    pg_store: Store, config: WorkerConfig
) -> None:
    seller_id = f.seller(pg_store)
    pending = installations.install(
        pg_store, seller_id, f.app(pg_store), "unlimited", "ops@shop.example.com", "+14155550101"
    ).id
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    try:
        producer.send(
            config.topic,
            key=str(pending).encode(),
            value=_report(pending),
            headers=[("traceparent", b"00-abc-01")],
        )
        producer.send(config.topic, key=b"x", value=b"{broken")
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.records_seen == 2, 30, "both dead-lettered")
        installations.authorize(pg_store, seller_id, pending)  # the cause is fixed

        report = redrive(
            config.bootstrap_servers, config.topic, reasons=["installation_not_active"]
        )
        assert dict(report.redriven) == {"installation_not_active": 1}
        assert dict(report.skipped) == {"invalid_json": 1}
        wait_until(
            lambda: installations.installation(pg_store, pending).incidents,
            30,
            "the re-driven report",
        )

        again = redrive(config.bootstrap_servers, config.topic, reasons=["installation_not_active"])
        assert not again.redriven and not again.skipped  # each dead letter once
    [redriven] = [
        r
        for r in read_topic(config.bootstrap_servers, config.topic, expected=3)
        if "redriven_from" in dict(r.headers)
    ]
    assert [k for k, _ in redriven.headers] == ["traceparent", "redriven_from"]  # the connector's
    [incident] = installations.installation(pg_store, pending).incidents.values()
    assert incident.count == 1


def test_a_success_may_carry_a_null_error_code_or_none_at_all() -> None:
    installation_id = uuid.uuid4()
    absent = json.loads(_report(installation_id, kind="success"))
    del absent["error_code"]
    for value in (_report(installation_id, kind="success", error_code=None), json.dumps(absent)):
        parsed = parse_message(value if isinstance(value, bytes) else value.encode())
        assert parsed.kind == "success"
        assert parsed.to_sync_event().error_code == ""
    with pytest.raises(PoisonMessage) as failure:
        parse_message(_report(installation_id, error_code=None))
    assert failure.value.reason == "schema_violation"
    assert "error_code is required" in failure.value.detail


def test_occurred_at_with_any_utc_offset_is_read_as_utc() -> None:
    expected = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    for written in (
        "2026-11-25T20:00:00Z",
        "2026-11-25T22:00:00+02:00",
        "2026-11-25T14:30:00-05:30",
        "2026-11-26T05:00:00+09:00",
    ):
        occurred_at = parse_message(_report(uuid.uuid4(), occurred_at=written)).occurred_at
        assert occurred_at == expected and occurred_at.utcoffset() == timedelta(0), written


def test_a_value_over_1_mib_is_refused_with_its_own_reason() -> None:
    from consumers.messages import MAX_VALUE_BYTES

    with pytest.raises(PoisonMessage) as too_big:
        parse_message(b" " * (MAX_VALUE_BYTES + 1))
    assert too_big.value.reason == "value_too_large"
    assert str(MAX_VALUE_BYTES + 1) in too_big.value.detail
