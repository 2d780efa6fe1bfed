"""Real producers the project did not write (librdkafka, as Java/Go/C connectors use) against
the consumer on a real broker and PostgreSQL: every compression codec, transactions, and the
other shapes such producers send (null keys, headers, big values, extra fields, UTC offsets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kafka.codec
import pytest
from kafka.consumer import KafkaConsumer
from kafka.errors import UnsupportedCodecError

from application import installations
from application.store import Store
from consumers.config import TOPIC_MAX_MESSAGE_BYTES, WorkerConfig
from consumers.health import ConsumerHealth
from consumers.messages import MAX_VALUE_BYTES
from tests.consumer_support import (
    LibrdkafkaProducer,
    consumer_settings,
    create_topic,
    failures_recorded,
    kafka_bootstrap,
    live_installations,
    new_store,
    read_topic,
    report,
    running_worker,
    unique_topic,
    wait_until,
)

__all__ = ["kafka_bootstrap"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# The library kafka-python reads each codec with (gzip is in the standard library).
CODEC_LIBRARY = {"snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = unique_topic("sync")
    # As the worker creates its topics: records above 1 MiB reach it (and then the DLQ).
    create_topic(kafka_bootstrap, name, 2, {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)})
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
        partitions=2,
        lag_interval_s=0.5,
    )


def _first_poll_error(bootstrap: str, topic: str) -> BaseException | None:
    """What one poll of `topic` from the start raises (one only: kafka-python would spin)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=unique_topic("probe"),
    )
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while datetime.now(UTC) < deadline:
            try:
                if consumer.poll(timeout_ms=500):
                    return None
            except Exception as error:
                return error
        return None
    finally:
        consumer.close(autocommit=False)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_codec_from_a_librdkafka_producer_raises_incidents(
    codec: str, pg_store: Store, config: WorkerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation_ids = live_installations(pg_store, 5)
    producer = LibrdkafkaProducer(config.bootstrap_servers, compression_type=codec)
    for installation_id in installation_ids:
        producer.produce(config.topic, report(installation_id), str(installation_id).encode())
    producer.flush()
    if codec in CODEC_LIBRARY:
        # The batches really are compressed with `codec`: without its library they are not read.
        with monkeypatch.context() as hidden:
            hidden.setattr(kafka.codec, CODEC_LIBRARY[codec], None)
            error = _first_poll_error(config.bootstrap_servers, config.topic)
        assert isinstance(error, UnsupportedCodecError), error
    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.applied == 5, 30, f"5 {codec} reports applied")
    assert failures_recorded(pg_store, installation_ids) == 5
    assert all(installations.installation(pg_store, i).incidents for i in installation_ids)


def test_aborted_transactions_raise_no_incident_and_committed_ones_do(
    pg_store: Store, config: WorkerConfig
) -> None:
    [installation_id] = live_installations(pg_store, 1)
    key = str(installation_id).encode()
    producer = LibrdkafkaProducer(
        config.bootstrap_servers,
        transactional_id=unique_topic("connector-tx"),
        compression_type="lz4",
    )
    producer.producer.init_transactions(30)
    producer.producer.begin_transaction()
    for n in range(3):
        producer.produce(
            config.topic,
            report(installation_id, area="inventory", event_id=f"a{n}"),
            key,
            partition=0,
        )
    producer.producer.flush(30)
    producer.producer.abort_transaction(30)
    producer.producer.begin_transaction()
    for n in range(2):
        producer.produce(
            config.topic, report(installation_id, area="orders", event_id=f"c{n}"), key, partition=0
        )
    producer.producer.commit_transaction(30)
    producer.flush()

    health = ConsumerHealth()
    with running_worker(pg_store, config, health) as running:
        wait_until(lambda: running.applied == 2, 30, "the committed transaction applied")
        # 3 aborted + 2 committed records and 2 markers: the lag still falls to 0.
        wait_until(
            lambda: health.snapshot()["partitions"].get(f"{config.topic}-0", {}).get("lag") == 0,
            30,
            "no lag once the markers are passed",
        )
        partition = health.snapshot()["partitions"][f"{config.topic}-0"]
    assert running.records_seen == 2  # the aborted ones were never delivered
    assert (partition["committed"], partition["end"]) == (7, 7)
    incidents = installations.installation(pg_store, installation_id).incidents.values()
    assert {i.area: i.count for i in incidents} == {"orders": 2}


def test_what_real_producers_send_null_keys_headers_extra_fields_and_offsets(
    pg_store: Store, config: WorkerConfig
) -> None:
    [installation_id] = live_installations(pg_store, 1)
    producer = LibrdkafkaProducer(config.bootstrap_servers, compression_type="zstd")
    # A connector that sets no key (librdkafka then spreads messages over partitions), adds
    # tracing headers, sends fields this store does not know and local times with offsets.
    producer.produce(
        config.topic,
        report(
            installation_id,
            area="orders",
            occurred_at="2026-11-25T22:00:00+02:00",
            schema_version=3,
            trace={"span": "abc"},
        ),
        headers=[("traceparent", b"00-abc-01"), ("empty", None)],
    )
    producer.produce(
        config.topic,
        report(installation_id, area="inventory", occurred_at="2026-11-25T14:30:00-05:30"),
        headers=[("content-type", b"application/json")],
    )
    producer.flush()
    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.applied == 2, 30, "both reports applied")
        success = report(installation_id, kind="success", area="orders", error_code=None)
        producer.produce(config.topic, success)
        producer.flush()
        wait_until(lambda: running.applied == 3, 30, "the success with a null error_code")
    assert not any(o.dead_letters for o in running.outcomes)
    incidents = {
        i.area: i for i in installations.installation(pg_store, installation_id).incidents.values()
    }
    assert incidents["orders"].first_seen == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    assert incidents["orders"].first_seen.utcoffset() == timedelta(0)
    assert incidents["orders"].status.value == "resolved"
    assert incidents["inventory"].first_seen == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    assert incidents["inventory"].first_seen.utcoffset() == timedelta(0)


def test_a_value_up_to_1_mib_applies_and_a_bigger_one_is_dead_lettered(
    pg_store: Store, config: WorkerConfig
) -> None:
    [installation_id] = live_installations(pg_store, 1)
    base = len(report(installation_id, object_ids=[]))
    ids_room = MAX_VALUE_BYTES - base - 10
    # 10,000 ids (the schema's limit) long enough to fill 1 MiB exactly.
    size = ids_room // 10_000 - 4  # quotes, comma and space per id
    biggest = report(installation_id, event_id="big", object_ids=["x" * size] * 10_000)
    biggest = biggest[:-1] + b" " * (MAX_VALUE_BYTES - len(biggest)) + b"}"
    too_big = report(installation_id, event_id="too-big", object_ids=["y" * (size + 1)] * 10_000)
    assert len(biggest) == MAX_VALUE_BYTES < len(too_big)
    producer = LibrdkafkaProducer(
        config.bootstrap_servers, compression_type="lz4", message_max_bytes=4_000_000
    )
    producer.produce(config.topic, biggest, b"k", partition=0, headers=[("trace", b"t-1")])
    producer.produce(config.topic, too_big, b"k", partition=0, headers=[("trace", b"t-2")])
    producer.flush()
    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.records_seen == 2, 60, "both big reports handled")
    assert running.applied == 1
    [incident] = installations.installation(pg_store, installation_id).incidents.values()
    assert incident.count == 1 and len(incident.object_ids) > 0
    [dead] = read_topic(config.bootstrap_servers, config.dlq_topic, expected=1)
    headers = dict(dead.headers)
    assert headers["reason"] == b"value_too_large"
    assert str(len(too_big)).encode() in headers["detail"]
    assert dead.value == too_big  # the original bytes, whole
    assert headers["trace"] == b"t-2"  # the connector's own headers are kept


def test_a_dead_letter_keeps_the_connectors_headers_but_not_a_forged_reason(
    pg_store: Store, config: WorkerConfig
) -> None:
    producer = LibrdkafkaProducer(config.bootstrap_servers)
    producer.produce(
        config.topic,
        b"{not json",
        b"k",
        headers=[("traceparent", b"00-abc-01"), ("reason", b"forged")],
    )
    producer.flush()
    with running_worker(pg_store, config) as running:
        wait_until(lambda: running.records_seen == 1, 30, "the bad report handled")
    [dead] = read_topic(config.bootstrap_servers, config.dlq_topic, expected=1)
    assert [name for name, _ in dead.headers].count("reason") == 1
    headers = dict(dead.headers)
    assert headers["reason"] == b"invalid_json"
    assert headers["traceparent"] == b"00-abc-01"
    assert dead.value == b"{not json"
