"""The sync-event consumer: connector reports on Kafka become incidents, exactly once.

One poll loop (group `appstore-consumers`, no auto-commit). Each polled batch goes through
three steps, each retried on its own until it works or the worker is told to stop:

1. store: valid messages go to `record_sync_events` in one transaction; the
   (installation, event_id) receipts make a redelivered message a no-op;
2. dead letters: bad JSON, schema violations and refused reports (unknown, cancelled,
   not active installation) go to `<topic>.dlq` with the original key and bytes and the
   headers `reason`, `detail`, `source_topic`, `source_partition`, `source_offset`;
   the producer is flushed and every send acknowledged;
3. commit: the batch's offsets, only now.

A crash anywhere before 3 re-delivers the batch; the effect still happens once. A transient
error (store or broker unreachable) never skips a message: the step backs off and retries.
Any other error rewinds the batch's partitions and polls it again (after a backoff).
SIGTERM/SIGINT stop the loop after the current batch.

Run it with `appstore consume` (settings from APPSTORE_*), or inside `appstore serve`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError
from kafka.admin import KafkaAdminClient
from kafka.consumer import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.producer import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import Counter, Histogram

from application.store import Store
from application.sync_events import SyncResult, record_sync_event, record_sync_events
from consumers.messages import (
    REASON_CANCELLED,
    REASON_NOT_ACTIVE,
    REASON_PROCESSING_ERROR,
    REASON_REJECTED,
    REASON_SCHEMA,
    REASON_UNKNOWN_INSTALLATION,
    PoisonMessage,
    parse_message,
)
from domain.errors import (
    ConcurrentUpdate,
    DomainError,
    InstallationCancelled,
    InstallationNotActive,
    InstallationNotFound,
    InvalidInput,
)
from domain.incident import SyncEvent

log = logging.getLogger("appstore.consumer")

# Installations under sync traffic are loaded batch after batch: keep them cached.
AGGREGATE_CACHE = 5000
GROUP_ID = "appstore-consumers"
# Short, so a worker started while the broker is down still stops promptly on SIGTERM.
BOOTSTRAP_TIMEOUT_MS = 5_000

# Errors that say "the store or the broker is not reachable right now", never "this
# message is bad": the step is retried, the message is not dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    PersistenceError,
    psycopg.Error,
    sqlite3.Error,
    OSError,
    TimeoutError,
    ConcurrentUpdate,
    KafkaError,
)

EVENTS = Counter(
    "appstore_sync_events_total",
    "Sync-event messages consumed, by outcome (applied, duplicate, dead_lettered).",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "appstore_sync_events_dead_lettered_total", "Messages sent to the DLQ, by reason.", ["reason"]
)
RETRIES = Counter(
    "appstore_consumer_retries_total",
    "Retries after a transient error, by step (poll, store, dlq, commit).",
    ["step"],
)
BATCH_SECONDS = Histogram(
    "appstore_consumer_batch_seconds", "Time from poll to committed offsets, per batch."
)


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker talks to Kafka (appstore.bootstrap.worker_config builds it)."""

    bootstrap_servers: str
    topic: str = "appstore.sync-events"
    group_id: str = GROUP_ID
    partitions: int = 6  # created topics get this many; run at most this many workers
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    batch_size: int = 500
    poll_timeout_ms: int = 500
    max_backoff_s: float = 10.0
    client_id: str = "appstore-consumer"
    session_timeout_ms: int = 10_000  # a killed worker's partitions move on after this

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord
    reason: str
    detail: str


@dataclass
class BatchOutcome:
    """What one batch did; `stored` pairs each applied record with its result."""

    stored: list[tuple[ConsumerRecord, SyncResult]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    started_at: float = 0.0  # time.time() when the batch was handed over by poll
    committed_at: float = 0.0  # time.time() when its offsets were committed

    @property
    def applied(self) -> int:
        return sum(1 for _, r in self.stored if not r.duplicate)

    @property
    def duplicates(self) -> int:
        return sum(1 for _, r in self.stored if r.duplicate)


class Stopped(Exception):
    """The worker was asked to stop while a step was still retrying."""


def reason_for(error: DomainError) -> str:
    """The DLQ reason code for a report the domain refused."""
    if isinstance(error, InstallationNotFound):
        return REASON_UNKNOWN_INSTALLATION
    if isinstance(error, InstallationCancelled):
        return REASON_CANCELLED
    if isinstance(error, InstallationNotActive):
        return REASON_NOT_ACTIVE
    if isinstance(error, InvalidInput):
        return REASON_SCHEMA
    return REASON_REJECTED


def ensure_topics(config: WorkerConfig) -> None:
    """Creates the topic and its DLQ if they are missing (idempotent)."""
    admin = KafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers,
        client_id=f"{config.client_id}-admin",
        request_timeout_ms=15_000,
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )
    try:
        existing = set(admin.list_topics())
        for topic in (config.topic, config.dlq_topic):
            if topic in existing:
                continue
            try:
                admin.create_topics(
                    {
                        topic: {
                            "num_partitions": config.partitions,
                            "replication_factor": config.replication_factor,
                        }
                    },
                    timeout_ms=15_000,
                    wait_for_metadata=True,
                )
                log.info("created topic %s (%d partitions)", topic, config.partitions)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
    finally:
        admin.close()


class SyncEventWorker:
    """The consumer loop. `run()` blocks until `stop()` (or the `stop_event` is set)."""

    def __init__(
        self,
        store: Store,
        config: WorkerConfig,
        *,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        """`on_batch` is called after each committed batch (benchmarks, tests);
        setting `stop_event` (if given) stops the worker like `stop()`."""
        self.store = store
        self.config = config
        self.on_batch = on_batch
        self._stop = stop_event or threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def stop(self) -> None:
        """Asks the loop to finish the current batch and return."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this worker owns right now (empty before it joined the group)."""
        consumer = self._consumer
        return set(consumer.assignment()) if consumer is not None else set()

    def run(self) -> None:
        """Consumes until stopped. Survives broker and store outages by retrying."""
        try:
            self._retrying("connect", self._connect)
        except Stopped:
            self._close()
            return
        consumer = self._consumer
        assert consumer is not None
        log.info(
            "consuming %s as group %s (DLQ %s)",
            self.config.topic,
            self.config.group_id,
            self.config.dlq_topic,
        )
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    polled = consumer.poll(
                        timeout_ms=self.config.poll_timeout_ms, max_records=self.config.batch_size
                    )
                except Exception as error:  # e.g. no broker; kafka-python reconnects
                    RETRIES.labels("poll").inc()
                    log.warning("poll failed, retrying: %r", error)
                    self._stop.wait(1.0)
                    continue
                records = [r for batch in polled.values() for r in batch]
                if not records:
                    continue
                try:
                    self.process(records)
                    failures = 0
                except Stopped:
                    log.info("stopping mid-batch; its offsets stay uncommitted")
                    break
                except Exception:  # a bug, not an outage: poll the batch again, never skip it
                    failures += 1
                    RETRIES.labels("batch").inc()
                    log.exception("batch of %d failed; polling it again", len(records))
                    self._rewind(consumer, records)
                    self._stop.wait(min(self.config.max_backoff_s, 0.2 * 2 ** min(failures, 10)))
        finally:
            self._close()
            log.info("consumer stopped")

    @staticmethod
    def _rewind(consumer: KafkaConsumer, records: Sequence[ConsumerRecord]) -> None:
        """Moves each partition back to the batch's first offset, so the next poll redoes it."""
        first: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            first[tp] = min(first.get(tp, record.offset), record.offset)
        for tp, offset in first.items():
            try:
                consumer.seek(tp, offset)
            except Exception:  # revoked meanwhile: its new owner starts from the commit
                log.warning("could not rewind %s to %d", tp, offset)

    def _connect(self) -> None:
        ensure_topics(self.config)
        common: dict[str, Any] = {
            "bootstrap_servers": self.config.bootstrap_servers,
            "client_id": self.config.client_id,
            "request_timeout_ms": 30_000,
            "reconnect_backoff_max_ms": 2_000,  # come back quickly after a broker restart
            "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        }
        if self._producer is None:
            self._producer = KafkaProducer(acks="all", linger_ms=5, max_block_ms=10_000, **common)
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                self.config.topic,
                group_id=self.config.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.config.batch_size,
                session_timeout_ms=self.config.session_timeout_ms,
                heartbeat_interval_ms=max(1000, self.config.session_timeout_ms // 4),
                **common,
            )

    def _close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            except Exception:  # closing must not mask why we stopped
                log.exception("closing the DLQ producer failed")
            self._producer = None
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)  # every finished batch is committed
            except Exception:
                log.exception("closing the consumer failed")
            self._consumer = None

    # --- one batch --------------------------------------------------------------------------
    def process(self, records: Sequence[ConsumerRecord]) -> BatchOutcome:
        """Stores, dead-letters, then commits one polled batch (each step retried)."""
        started = time.monotonic()
        outcome = BatchOutcome(started_at=time.time())
        valid: list[tuple[ConsumerRecord, SyncEvent]] = []
        for record in records:
            try:
                valid.append((record, parse_message(record.value).to_sync_event()))
            except PoisonMessage as poison:
                outcome.dead_letters.append(DeadLetter(record, poison.reason, poison.detail))
        if valid:
            results = self._retrying("store", lambda: self._store(valid))
            for (record, _), result in zip(valid, results, strict=True):
                if isinstance(result, SyncResult):
                    outcome.stored.append((record, result))
                else:
                    outcome.dead_letters.append(
                        DeadLetter(record, result[0], result[1])  # (reason, detail)
                    )
        if outcome.dead_letters:
            self._retrying("dlq", lambda: self._send_dead_letters(outcome.dead_letters))
        self._commit(records)
        outcome.committed_at = time.time()
        BATCH_SECONDS.observe(time.monotonic() - started)
        EVENTS.labels("applied").inc(outcome.applied)
        EVENTS.labels("duplicate").inc(outcome.duplicates)
        EVENTS.labels("dead_lettered").inc(len(outcome.dead_letters))
        for letter in outcome.dead_letters:
            DEAD_LETTERS.labels(letter.reason).inc()
        if self.on_batch is not None:
            self.on_batch(outcome)
        return outcome

    def _store(
        self, valid: list[tuple[ConsumerRecord, SyncEvent]]
    ) -> list[SyncResult | tuple[str, str]]:
        """One result per message: its SyncResult, or the (reason, detail) of a refusal."""
        events = [event for _, event in valid]
        try:
            raw: Sequence[SyncResult | Exception] = record_sync_events(self.store, events)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            # A bug the batch path trips on: find the one message causing it, item by item.
            log.exception("batch of %d failed unexpectedly; applying one by one", len(events))
            raw = [self._store_one(event) for event in events]
        results: list[SyncResult | tuple[str, str]] = []
        for item in raw:
            if isinstance(item, SyncResult):
                results.append(item)
            elif isinstance(item, TRANSIENT_ERRORS):
                raise item  # e.g. a lost race that ran out of retries: retry the batch
            elif isinstance(item, DomainError):
                results.append((reason_for(item), item.detail[:500]))
            else:
                results.append((REASON_PROCESSING_ERROR, repr(item)[:500]))
        return results

    def _store_one(self, event: SyncEvent) -> SyncResult | Exception:
        try:
            return record_sync_event(self.store, event)
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:  # dead-lettered with the error, never silently dropped
            log.exception("sync event %s could not be applied", event.event_id)
            return error

    def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        producer = self._producer
        assert producer is not None
        futures = []
        for letter in letters:
            record = letter.record
            headers = [
                ("reason", letter.reason.encode()),
                ("detail", letter.detail.encode("utf-8", "replace")[:1000]),
                ("source_topic", record.topic.encode()),
                ("source_partition", str(record.partition).encode()),
                ("source_offset", str(record.offset).encode()),
            ]
            futures.append(
                producer.send(
                    self.config.dlq_topic, key=record.key, value=record.value, headers=headers
                )
            )
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=1)  # raises the send's error: the whole step is retried

    def _commit(self, records: Sequence[ConsumerRecord]) -> None:
        consumer = self._consumer
        assert consumer is not None
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp not in offsets or offsets[tp].offset <= record.offset:
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)

        def commit() -> None:
            try:
                consumer.commit(offsets, timeout_ms=15_000)
            except CommitFailedError as error:
                # The group rebalanced: the new owner re-delivers; event_id dedupes.
                log.warning(
                    "commit refused after a rebalance (%s); batch will be redelivered", error
                )

        self._retrying("commit", commit)

    # --- retries ---------------------------------------------------------------------------
    def _retrying(self, step: str, action: Callable[[], Any]) -> Any:
        """Runs `action` until it works; transient errors back off (capped), never skip."""
        attempt = 0
        while True:
            try:
                return action()
            except TRANSIENT_ERRORS as error:
                attempt += 1
                RETRIES.labels(step).inc()
                delay = min(self.config.max_backoff_s, 0.2 * 2 ** min(attempt, 10))
                log.warning(
                    "%s failed (attempt %d), retrying in %.1fs: %r", step, attempt, delay, error
                )
                if self._stop.wait(delay):
                    raise Stopped(step) from error
