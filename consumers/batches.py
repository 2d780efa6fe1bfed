"""One polled batch of sync-event records through the store: parsed, applied in one
transaction with each partition's progress (application/kafka_ingest.py), and what goes to
the DLQ. The worker (consumers/worker.py) retries, dead-letters and commits around it."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from eventsourcing.persistence import PersistenceError
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from application.kafka_ingest import KafkaIngest, Record, Refusal
from application.sync_events import SyncResult
from consumers.dead_letters import DeadLetter, reason_for
from consumers.messages import REASON_PROCESSING_ERROR, PoisonMessage, parse_message
from domain.errors import ConcurrentUpdate, DomainError
from domain.incident import SyncEvent

log = logging.getLogger("appstore.consumer")

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


def classify(error: Exception) -> Refusal:
    """The DLQ reason and detail of a report the store refused (or failed on)."""
    if isinstance(error, DomainError):
        return Refusal(reason_for(error), error.detail[:500])
    return Refusal(REASON_PROCESSING_ERROR, repr(error)[:500])


def parsed(records: Sequence[ConsumerRecord]) -> list[Record]:
    """Each record's report, or why it cannot be one."""
    out: list[Record] = []
    for record in records:
        report: SyncEvent | Refusal
        try:
            report = parse_message(record.value).to_sync_event()
        except PoisonMessage as poison:
            report = Refusal(poison.reason, poison.detail)
        out.append(Record(record.partition, record.offset, report))
    return out


def store_batch(
    ingest: KafkaIngest, records: Sequence[ConsumerRecord], outcome: BatchOutcome
) -> None:
    """Applies the batch (one transaction) and sorts its records into `outcome`."""
    items = parsed(records)
    try:
        results = ingest.apply(items)
    except TRANSIENT_ERRORS:
        raise
    except Exception:
        # A bug the batch trips on: find the one report causing it, record by record.
        log.exception("batch of %d failed unexpectedly; applying one by one", len(items))
        results = [result for item in items for result in ingest.apply([item], isolate=True)]
    for record, result in zip(records, results, strict=True):
        if isinstance(result, SyncResult):
            outcome.stored.append((record, result))
        elif isinstance(result, Refusal):
            if result.reason == REASON_PROCESSING_ERROR:
                log.error(
                    "record %s-%d could not be applied: %s",
                    record.topic,
                    record.offset,
                    result.detail,
                )
            outcome.dead_letters.append(DeadLetter(record, result.reason, result.detail))
