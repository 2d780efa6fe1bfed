"""Dead letters: what goes to `<topic>.dlq`, with which reason, and how it is sent.

A dead letter keeps the original record's key, bytes and headers, and adds `reason`,
`detail`, `source_topic`, `source_partition` and `source_offset`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.consumer.fetcher import ConsumerRecord
from kafka.producer import KafkaProducer

from consumers.messages import (
    REASON_CANCELLED,
    REASON_NOT_ACTIVE,
    REASON_REJECTED,
    REASON_SCHEMA,
    REASON_UNKNOWN_INSTALLATION,
)
from domain.errors import (
    DomainError,
    InstallationCancelled,
    InstallationNotActive,
    InstallationNotFound,
    InvalidInput,
)

# Headers the DLQ sets; a dead letter keeps the original record's other headers.
DLQ_HEADERS = ("reason", "detail", "source_topic", "source_partition", "source_offset")


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord
    reason: str
    detail: str


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


def send_dead_letters(producer: KafkaProducer, dlq_topic: str, letters: list[DeadLetter]) -> None:
    """Sends each letter to the DLQ with its reason and origin; returns once all are
    acknowledged (or raises the first send's error, so the whole step is retried)."""
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
            producer.send(dlq_topic, key=record.key, value=record.value, headers=headers)
        )
    producer.flush(timeout=30)
    for future in futures:
        future.get(timeout=1)  # raises the send's error: the whole step is retried
