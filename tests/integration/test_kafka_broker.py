"""Integration tests of the real Kafka broker tooling (kafka/broker.sh + tests/kafka_broker.py).

The round-trip test starts its own broker in a tmp dir, or uses the one named by
APPSTORE_TEST_KAFKA_BOOTSTRAP; the restart test always starts a private one.
"""

from __future__ import annotations

import time
import uuid

import pytest

# Submodule imports on purpose: the repo's kafka/ directory (broker tooling)
# makes linters file a bare "kafka" import under first-party.
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.consumer import KafkaConsumer
from kafka.producer import KafkaProducer
from kafka.structs import TopicPartition

try:
    from tests.kafka_broker import KafkaBroker
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from kafka_broker import KafkaBroker


def _unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        admin.create_topics(
            [NewTopic(name=topic, num_partitions=partitions, replication_factor=1)],
            timeout_ms=15000,
        )
        deadline = time.monotonic() + 30
        while topic not in admin.list_topics():
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            time.sleep(0.2)
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        request_timeout_ms=15000,
        max_block_ms=30000,
    )
    try:
        futures = [producer.send(topic, key=str(i).encode(), value=v) for i, v in enumerate(values)]
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)  # raises if any send failed
    finally:
        producer.close(timeout=10)


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> list[bytes]:
    """Read a topic from the start (no consumer group) until `expected` records or timeout."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while not partitions:
            assert time.monotonic() < deadline, f"no partitions known for {topic}"
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: list[bytes] = []
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
        return got
    finally:
        consumer.close()


@pytest.mark.kafka
def test_produce_and_consume_100_messages(tmp_path):
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        bootstrap = broker.bootstrap_servers
        assert bootstrap
        topic = _unique_topic("broker-smoke")
        _create_topic(bootstrap, topic)
        sent = [f"message-{i}".encode() for i in range(100)]
        _produce(bootstrap, topic, sent)
        got = _consume_all(bootstrap, topic, expected=100)
        assert got == sent
    finally:
        broker.stop()
    if not broker.external:
        assert not (tmp_path / "kafka" / "broker.pid").exists()
        broker.stop()  # idempotent


@pytest.mark.kafka
def test_data_survives_broker_restart(tmp_path):
    # A private broker even when APPSTORE_TEST_KAFKA_BOOTSTRAP names a shared one:
    # restarting the shared broker would disturb other tests.
    broker = KafkaBroker(tmp_path / "kafka", use_env=False)
    broker.start()
    try:
        bootstrap = broker.bootstrap_servers
        topic = _unique_topic("broker-restart")
        _create_topic(bootstrap, topic, partitions=2)
        before = [f"before-{i}".encode() for i in range(50)]
        _produce(bootstrap, topic, before)

        assert broker.restart() == bootstrap  # same ports after a restart

        got = _consume_all(bootstrap, topic, expected=len(before))
        assert sorted(got) == sorted(before)

        after = [f"after-{i}".encode() for i in range(10)]
        _produce(bootstrap, topic, after)
        got = _consume_all(bootstrap, topic, expected=len(before) + len(after))
        assert sorted(got) == sorted(before + after)
    finally:
        broker.stop()
