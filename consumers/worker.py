"""The sync-event consumer: connector reports on Kafka become incidents, exactly once.

One poll loop (group `appstore-consumers`, no auto-commit). Each polled batch goes through
three steps, each retried on its own until it works or the worker is told to stop:

1. store: the batch's reports are applied in one transaction together with each
   partition's progress (application/kafka_ingest.py): a record below it never has a
   second effect, and a new owner of a partition starts after it (the group commit is
   advisory); a report re-sent at a new offset is known by its event_id;
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

Run it with `appstore consume` (settings from APPSTORE_*), or inside `appstore serve`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka.consumer import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError
from kafka.producer import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import Counter, Histogram

from application.kafka_ingest import KafkaIngest
from application.store import Store
from consumers.batches import TRANSIENT_ERRORS, BatchOutcome, classify, store_batch
from consumers.config import (
    BOOTSTRAP_TIMEOUT_MS,
    TOPIC_MAX_MESSAGE_BYTES,
    WorkerConfig,
    ensure_topics,
)
from consumers.dead_letters import DeadLetter, send_dead_letters
from consumers.health import ConsumerHealth
from consumers.partitions import PartitionWatch

log = logging.getLogger("appstore.consumer")

__all__ = ["TRANSIENT_ERRORS", "BatchOutcome", "SyncEventWorker"]

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


class Stopped(Exception):
    """The worker was asked to stop while a step was still retrying."""


class SyncEventWorker:
    """The consumer loop. `run()` blocks until `stop()` (or the `stop_event` is set)."""

    def __init__(
        self,
        store: Store,
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
        self.ingest = KafkaIngest(store, config.topic, classify)

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
            consumer = KafkaConsumer(
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
            consumer.subscribe([self.config.topic], listener=_ResumeFromStore(self, consumer))
            self._consumer = consumer

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
        self._retrying("store", lambda: store_batch(self.ingest, records, outcome))
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

    def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        assert self._producer is not None
        send_dead_letters(self._producer, self.config.dlq_topic, letters)

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


class _ResumeFromStore(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition this worker is given starts after what the store applied of it (the
    group's commit may be behind: a crash between the store commit and the Kafka commit)."""

    def __init__(self, worker: SyncEventWorker, consumer: KafkaConsumer) -> None:
        self.worker = worker
        self.consumer = consumer

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in sorted(assigned):
            try:
                offset = self.worker.ingest.resume_offset(tp.partition)
                if offset is not None:
                    self.consumer.seek(tp, offset)
            except Exception as error:  # still exactly once: the store skips what it applied
                log.warning("could not read where %s stands in the store: %r", tp, error)
