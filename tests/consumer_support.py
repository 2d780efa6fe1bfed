"""What the consumer tests share: a real broker, a PostgreSQL store, a worker in a thread,
and bounded waits. Fixtures are imported by the test modules that use them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from kafka.admin import KafkaAdminClient
from kafka.consumer import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition

from application import installations
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from consumers.config import WorkerConfig
from consumers.health import ConsumerHealth
from consumers.worker import BatchOutcome, SyncEventWorker
from tests import factories as f
from tests.kafka_broker import ENV_BOOTSTRAP, KafkaBroker

CAN_RUN_BROKER = shutil.which("java") is not None and shutil.which("mvn") is not None
NO_BROKER = (
    f"needs a Kafka broker: set {ENV_BOOTSTRAP} (make test does) or install java and mvn "
    "so the test can start one"
)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shared test broker (make test), or a private one started for this session."""
    if os.environ.get(ENV_BOOTSTRAP):
        yield os.environ[ENV_BOOTSTRAP]
        return
    if not CAN_RUN_BROKER:
        pytest.skip(NO_BROKER)
    broker = KafkaBroker(tmp_path_factory.mktemp("consumer-kafka"), use_env=False)
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own, which it may stop and restart."""
    if not CAN_RUN_BROKER:
        pytest.skip("restarting a broker needs java and mvn to run a private one")
    broker = KafkaBroker(tmp_path / "kafka", use_env=False)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(
    bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        admin.create_topics(
            {
                topic: {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": configs or {},
                }
            },
            timeout_ms=15_000,
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def consumer_settings(database_url: str, bootstrap: str, topic: str) -> Settings:
    return Settings(
        database_url=database_url,
        fast_password_hashing=True,
        kafka_bootstrap_servers=bootstrap,
        sync_events_topic=topic,
    )


def new_store(settings: Settings) -> Store:
    """A store on the system clock: a worker subprocess must see the same 'now'."""
    return build_store(settings)


def live_installations(store: Store, n: int) -> list[UUID]:
    """`n` active installations of one app by different sellers."""
    app_id = f.app(store)
    return [
        f.active_installation(store, f.seller(store), app_id, duration="unlimited")
        for _ in range(n)
    ]


def failures_recorded(store: Store, installation_ids: list[UUID]) -> int:
    """How many failure reports the incidents count (each raise or recurrence counts one)."""
    return sum(
        incident.count
        for installation_id in installation_ids
        for incident in installations.installation(store, installation_id).incidents.values()
    )


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Polls `condition` until it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


@dataclass
class RunningWorker:
    worker: SyncEventWorker
    thread: threading.Thread
    outcomes: list[BatchOutcome] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)

    @property
    def records_seen(self) -> int:
        return sum(len(o.stored) + len(o.dead_letters) for o in self.outcomes)

    @property
    def applied(self) -> int:
        return sum(o.applied for o in self.outcomes)

    @property
    def duplicates(self) -> int:
        return sum(o.duplicates for o in self.outcomes)


@contextlib.contextmanager
def running_worker(
    store: Store, config: WorkerConfig, health: ConsumerHealth | None = None
) -> Iterator[RunningWorker]:
    """A worker consuming in a thread; stopped (and joined, bounded) on exit."""
    outcomes: list[BatchOutcome] = []
    worker = SyncEventWorker(store, config, on_batch=outcomes.append, health=health)
    running = RunningWorker(worker, threading.Thread(), outcomes)

    def target() -> None:
        try:
            worker.run()
        except BaseException as error:  # surfaced by the test, not lost in the thread
            running.error.append(error)

    running.thread = threading.Thread(target=target, name="test-worker", daemon=True)
    running.thread.start()
    try:
        yield running
    finally:
        worker.stop()
        running.thread.join(timeout=60)
        assert not running.thread.is_alive(), "worker did not stop within 60 s"
    assert not running.error, f"worker died: {running.error!r}"


def read_topic(
    bootstrap: str, topic: str, expected: int, timeout: float = 60
) -> list[ConsumerRecord]:
    """Every record of `topic` from the beginning, once `expected` have arrived (bounded)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15_000
    )
    try:
        partitions = wait_until(
            lambda: consumer.partitions_for_topic(topic), 30, f"partitions of {topic}"
        )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # A short extra poll: more than expected would be a bug too.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


class LibrdkafkaProducer:
    """A producer the project did not write: confluent-kafka (librdkafka), as connectors in
    Java, Go or C behave. `send` raises if the broker refused anything."""

    def __init__(self, bootstrap: str, **config: Any) -> None:
        from confluent_kafka import Producer

        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 50,  # several messages per batch: compression works on batches
            "message.timeout.ms": 30_000,
        }
        settings.update({k.replace("_", "."): v for k, v in config.items()})
        self.producer = Producer(settings)
        self.errors: list[str] = []

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.errors.append(str(error))

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if headers is not None:
            extra["headers"] = headers
        self.producer.produce(topic, value=value, key=key, on_delivery=self._delivered, **extra)
        self.producer.poll(0)

    def flush(self, timeout: float = 30) -> None:
        left = self.producer.flush(timeout)
        assert left == 0, f"{left} messages not delivered in {timeout}s"
        assert not self.errors, f"the broker refused: {self.errors}"


def report(installation: UUID | str, **fields: Any) -> bytes:
    """A failure report's JSON value; `fields` override or add keys."""
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
