"""The sync-event consumer: connector reports on Kafka become incidents, exactly once.

One poll loop (group `appstore-consumers`, no auto-commit). Each polled batch goes through
three steps, each retried on its own until it works or the worker is told to stop:

1. store: valid messages go to `AppStore.record_sync_events` in one transaction; the
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

It reads with `read_committed`: messages of aborted Kafka transactions are never seen. A
batch that cannot be decoded stalls only its partition, loudly (see consumers/partitions.py);
the worker's `health` (lag per partition, stalls) feeds `/readyz` and `/metrics`.

Run it with `appstore consume` or `python -m consumers.worker` (settings from APPSTORE_*).
"""

from __future__ import annotations

import logging
import signal
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

from consumers.health import ConsumerHealth, serve_health
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
from consumers.partitions import PartitionWatch
from domain.errors import (
    ConcurrentUpdate,
    DomainError,
    InstallationCancelled,
    InstallationNotActive,
    InstallationNotFound,
    InvalidInput,
)
from domain.store import AppStore, SyncEvent, SyncResult

log = logging.getLogger("appstore.consumer")

# Installations under sync traffic are loaded batch after batch: keep them cached.
AGGREGATE_CACHE = 5000
GROUP_ID = "appstore-consumers"
# Short, so a worker started while the broker is down still stops promptly on SIGTERM.
BOOTSTRAP_TIMEOUT_MS = 5_000
# Topics it creates accept records well above the 1 MiB a report may have, so an oversized
# report reaches the DLQ with a reason instead of being refused to its connector.
TOPIC_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Headers the DLQ sets; a dead letter keeps the original record's other headers.
DLQ_HEADERS = ("reason", "detail", "source_topic", "source_partition", "source_offset")

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
    """How the worker talks to Kafka. `from_settings` reads the process settings."""

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
    stall_retry_s: float = 60.0  # a stalled partition is fetched again this often
    skip_check_s: float = 2.0  # how often operator skips are looked for in the store
    lag_interval_s: float = 5.0  # how often end offsets are read for the lag

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WorkerConfig:
        """Config from `appstore.settings.Settings` (optional fields fall back to defaults)."""
        if not settings.kafka_bootstrap_servers:
            raise ValueError("APPSTORE_KAFKA_BOOTSTRAP_SERVERS is not set")
        values: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "topic": settings.sync_events_topic,
        }
        for name, setting in (
            ("group_id", "kafka_consumer_group"),
            ("partitions", "kafka_sync_events_partitions"),
            ("batch_size", "kafka_consumer_batch_size"),
        ):
            value = getattr(settings, setting, None)
            if value is not None:
                values[name] = value
        values.update(overrides)
        return cls(**values)


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
                            "configs": {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)},
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
    """The consumer loop. `run()` blocks until `stop()` (or a signal, see `run` below)."""

    def __init__(
        self,
        store: AppStore,
        config: WorkerConfig,
        *,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        stop_event: threading.Event | None = None,
        health: ConsumerHealth | None = None,
    ) -> None:
        """`on_batch` is called after each committed batch (benchmarks, tests);
        setting `stop_event` (if given) stops the worker like `stop()`; `health` is where
        it reports lag and stalls (for /readyz and /metrics)."""
        self.store = store
        self.config = config
        self.on_batch = on_batch
        self.health = health or ConsumerHealth()
        self._stop = stop_event or threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._watch: PartitionWatch | None = None

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
        self.health.started(self.config.topic, self.config.group_id)
        try:
            self._retrying("connect", self._connect)
        except Stopped:
            self.health.stopped()
            self._close()
            return
        consumer = self._consumer
        assert consumer is not None
        watch = self._watch = PartitionWatch(
            consumer,
            self.store,
            self.health,
            topic=self.config.topic,
            group=self.config.group_id,
            client_id=self.config.client_id,
            stall_retry_s=self.config.stall_retry_s,
            skip_check_s=self.config.skip_check_s,
            lag_interval_s=self.config.lag_interval_s,
        )
        log.info(
            "consuming %s as group %s (DLQ %s)",
            self.config.topic,
            self.config.group_id,
            self.config.dlq_topic,
        )
        failures = 0
        try:
            while not self._stop.is_set():
                watch.tick()
                try:
                    polled = consumer.poll(
                        timeout_ms=self.config.poll_timeout_ms, max_records=self.config.batch_size
                    )
                except Exception as error:
                    if watch.undecodable(error):
                        continue  # that partition is paused and reported; the others go on
                    # e.g. no broker; kafka-python reconnects
                    RETRIES.labels("poll").inc()
                    self.health.failed(error)
                    log.warning("poll failed, retrying: %r", error)
                    self._stop.wait(1.0)
                    continue
                watch.reading(set(polled))
                records = [r for batch in polled.values() for r in batch]
                if not records:
                    continue  # (an empty poll proves nothing: kafka-python hides a lost broker)
                self.health.worked()
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
            self.health.stopped()
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
            self._producer = KafkaProducer(
                acks="all",
                linger_ms=5,
                max_block_ms=10_000,
                # Dead letters may be oversized reports: compress, and allow them through.
                compression_type="lz4",
                max_request_size=TOPIC_MAX_MESSAGE_BYTES,
                **common,
            )
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                self.config.topic,
                group_id=self.config.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # Connectors that publish in Kafka transactions: aborted messages never count.
                isolation_level="read_committed",
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
            raw: Sequence[SyncResult | Exception] = self.store.record_sync_events(events)
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
            return self.store.record_sync_event(event)
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
            kept = [(k, v) for k, v in record.headers or [] if k not in DLQ_HEADERS]
            headers = [
                *kept,
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
                return
            if self._watch is not None:
                self._watch.committed({tp: o.offset for tp, o in offsets.items()})

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
                self.health.failed(error)
                delay = min(self.config.max_backoff_s, 0.2 * 2 ** min(attempt, 10))
                log.warning(
                    "%s failed (attempt %d), retrying in %.1fs: %r", step, attempt, delay, error
                )
                if self._stop.wait(delay):
                    raise Stopped(step) from error


def run(
    settings: Any,
    *,
    stop: threading.Event | None = None,
    health: ConsumerHealth | None = None,
    **config_overrides: Any,
) -> None:
    """Runs the consumer for these settings until SIGTERM/SIGINT (or `stop` is set).

    Signal handlers are installed only when called from the main thread; an embedding
    process (e.g. `serve`) passes its own `stop` event instead, and a `health` to show.
    """
    from appstore.wiring import build_store

    store = build_store(settings, aggregate_cache=AGGREGATE_CACHE)
    config = WorkerConfig.from_settings(settings, **config_overrides)
    worker = SyncEventWorker(store, config, stop_event=stop, health=health)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        store.close()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m consumers.worker [--batch-size N] [--partitions N]`, settings from APPSTORE_*."""
    import argparse

    from appstore.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m consumers.worker", description=main.__doc__)
    parser.add_argument("--batch-size", type=int, help="max messages per poll and transaction")
    parser.add_argument("--partitions", type=int, help="partitions of topics it creates")
    parser.add_argument("--group-id", help=f"consumer group (default {GROUP_ID})")
    parser.add_argument(
        "--metrics-port", type=int, help="serve /metrics, /readyz and /healthz on this port"
    )
    parser.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port")
    args = parser.parse_args(argv)
    metrics_port, metrics_host = args.metrics_port, args.metrics_host
    del args.metrics_port, args.metrics_host
    overrides = {k: v for k, v in vars(args).items() if v is not None}

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    health = ConsumerHealth()
    if metrics_port:
        serve_health(health, metrics_host, metrics_port)
    run(get_settings(), health=health, **overrides)


if __name__ == "__main__":
    main()
