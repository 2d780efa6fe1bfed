"""Re-drives dead letters: puts DLQ messages back on the sync-events topic, once each.

After the cause is fixed (an installation authorized, a connector's schema bug patched and
its messages still worth applying), an operator runs::

    appstore redrive --reason installation_not_active [--dry-run]

It reads `<topic>.dlq` up to its end as of the start, remembering in consumer group
`appstore-dlq-redrive.<reasons>` what it considered, so each dead letter is re-driven once per
set of reasons. The chosen ones go back to the source topic with their original key and
bytes and the connector's own headers (plus a `redriven_from` header) and the worker applies them as usual (`event_id` still
dedupes). Messages still bad land in the DLQ again, past this run's end: no loop.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka.consumer import KafkaConsumer
from kafka.producer import KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers.config import BOOTSTRAP_TIMEOUT_MS
from consumers.dead_letters import DLQ_HEADERS

log = logging.getLogger("appstore.consumer.redrive")

REDRIVE_GROUP = "appstore-dlq-redrive"


@dataclass
class RedriveReport:
    redriven: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def redrive(
    bootstrap_servers: str,
    topic: str,
    *,
    reasons: Sequence[str] = (),
    dry_run: bool = False,
    group_id: str | None = None,
    timeout_s: float = 60,
) -> RedriveReport:
    """Re-publishes the DLQ's not yet considered messages (with one of `reasons`, or all).

    Reads up to the DLQ's end as of the start, so letters that fail again during this run
    wait for the next one. The group (default: one per set of reasons) remembers what was
    considered. With `dry_run` nothing is sent or committed.
    """
    group = group_id or f"{REDRIVE_GROUP}.{'+'.join(sorted(reasons)) or 'all'}"
    dlq = f"{topic}.dlq"
    report = RedriveReport()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS
    )
    try:
        partitions = consumer.partitions_for_topic(dlq) or set()
        tps = [TopicPartition(dlq, p) for p in sorted(partitions)]
        if not tps:
            return report  # no DLQ yet: nothing ever failed
        consumer.assign(tps)  # no group rebalancing: one re-drive at a time is the use
        end = consumer.end_offsets(tps)
        pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
        futures: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset >= end[tp]:
                        break
                    _consider(record, topic, reasons, dry_run, producer, futures, report)
                if consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        if pending:
            raise TimeoutError(f"could not read {dlq} to its end in {timeout_s}s")
        if not dry_run:
            producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=1)  # every re-sent message acknowledged before committing
            consumer.commit({tp: OffsetAndMetadata(end[tp], "", -1) for tp in tps})
    finally:
        producer.close(timeout=10)
        consumer.close(autocommit=False)
    return report


def _consider(
    record: Any,
    topic: str,
    reasons: Sequence[str],
    dry_run: bool,
    producer: KafkaProducer,
    futures: list[Any],
    report: RedriveReport,
) -> None:
    headers = dict(record.headers)
    reason = headers.get("reason", b"").decode(errors="replace")
    if reasons and reason not in reasons:
        report.skipped[reason] += 1
        return
    report.redriven[reason] += 1
    if not dry_run:
        source = f"{record.topic}:{record.partition}:{record.offset}".encode()
        original = [(k, v) for k, v in record.headers or [] if k not in DLQ_HEADERS]
        futures.append(
            producer.send(
                topic,
                key=record.key,
                value=record.value,
                headers=[*original, ("redriven_from", source)],
            )
        )
