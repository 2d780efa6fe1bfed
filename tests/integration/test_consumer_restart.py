"""A worker that dies after the store commit, before the DLQ send and the Kafka commit: the
next worker of the group starts where the store says (not where the group committed), so
nothing counts twice, and the dead letters of that batch still reach the DLQ."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.consumer import KafkaConsumer
from kafka.producer import KafkaProducer
from kafka.structs import TopicPartition

from application.store import Store
from consumers.config import WorkerConfig
from consumers.worker import Stopped, SyncEventWorker
from tests.consumer_support import (
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


@pytest.fixture
def config(kafka_bootstrap: str) -> WorkerConfig:
    topic = unique_topic("restart")
    create_topic(kafka_bootstrap, topic, partitions=1)
    return WorkerConfig(
        bootstrap_servers=kafka_bootstrap, topic=topic, group_id=unique_topic("group")
    )


@pytest.fixture
def pg_store(postgres_url: str, config: WorkerConfig) -> Any:
    store = new_store(consumer_settings(postgres_url, config.bootstrap_servers, config.topic))
    yield store
    store.close()


def _committed(config: WorkerConfig) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap_servers, group_id=config.group_id)
    try:
        return consumer.committed(TopicPartition(config.topic, 0))
    finally:
        consumer.close(autocommit=False)


def test_a_crash_between_the_store_commit_and_the_kafka_commit_counts_nothing_twice(
    pg_store: Store, config: WorkerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    [installation_id] = live_installations(pg_store, 1)
    key = str(installation_id).encode()
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    try:
        for n in range(3):
            producer.send(config.topic, key=key, value=report(installation_id, event_id=f"e{n}"))
        producer.send(config.topic, key=key, value=b"{not json")
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)

    def die(self: SyncEventWorker, letters: Any) -> None:
        raise Stopped("dlq")  # the process dies here: stored, nothing sent nor committed

    with monkeypatch.context() as patched:
        patched.setattr(SyncEventWorker, "_send_dead_letters", die)
        with running_worker(pg_store, config) as first:
            wait_until(lambda: not first.thread.is_alive(), 60, "the first worker to die mid-batch")
    assert failures_recorded(pg_store, [installation_id]) == 3
    assert _committed(config) is None  # the group never committed: Kafka would redeliver all

    with running_worker(pg_store, config) as second:
        dead = read_topic(config.bootstrap_servers, config.dlq_topic, expected=1)
        wait_until(lambda: _committed(config) == 4, 60, "the second worker's commit")
    assert failures_recorded(pg_store, [installation_id]) == 3
    # It started at the refused record (the store's progress), not at offset 0.
    assert second.records_seen == 1 and second.applied == 0
    assert [(r.value, dict(r.headers)["reason"]) for r in dead] == [(b"{not json", b"invalid_json")]


def test_a_new_group_starts_where_the_store_is(pg_store: Store, config: WorkerConfig) -> None:
    [installation_id] = live_installations(pg_store, 1)
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    try:
        producer.send(config.topic, value=report(installation_id))
        producer.flush(timeout=30)
        with running_worker(pg_store, config) as first:
            wait_until(lambda: first.applied == 1, 60, "the report applied")
        producer.send(config.topic, value=report(installation_id))
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    renamed = WorkerConfig(
        bootstrap_servers=config.bootstrap_servers,
        topic=config.topic,
        group_id=unique_topic("group"),
    )
    with running_worker(pg_store, renamed) as second:
        wait_until(lambda: second.applied == 1, 60, "the new report applied")
    assert second.records_seen == 1  # not offset 0 again, though the group is new
    assert failures_recorded(pg_store, [installation_id]) == 2
