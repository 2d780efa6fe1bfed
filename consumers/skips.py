"""An operator gives up the messages of one partition before an offset, on the record.

    appstore consume --skip-to 3:1042 --reason "lz4 batch from connector X is corrupt"

The way out of a stalled partition (a batch nobody can decode). The request is an event
(`ConsumerOffsets.SkipRequested`: partition, offset, reason, who, when). If no consumer of
the group is running, the group's offset is committed here; otherwise the worker owning the
partition carries it out within seconds. Either way a `Skipped` event records what was
given up (`appstore audit show <id>` and `/v1/audit/…` show both).
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass
from typing import Any

from kafka.consumer import KafkaConsumer
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from application import ingest
from application.store import Store
from consumers.partitions import worker_name
from domain.errors import InvalidInput
from domain.ingest import offsets_id

# What the coordinator answers a commit from outside a group that has members.
GROUP_ACTIVE_ERRORS = (
    CommitFailedError,
    IllegalGenerationError,
    UnknownMemberIdError,
    RebalanceInProgressError,
)


@dataclass(frozen=True)
class SkipOutcome:
    """What a skip did. `applied_by` is None while the owning worker has not carried it out."""

    aggregate_id: Any
    partition: int
    to_offset: int
    from_offset: int | None
    applied_by: str | None


def parse_target(text: str) -> tuple[int, int]:
    """`"3:1042"` → (3, 1042)."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.strip().isdigit() or not offset.strip().isdigit():
        raise InvalidInput("skip-to", f"expected PARTITION:OFFSET such as 0:1042, got {text!r}")
    return int(partition), int(offset)


def skip_to(
    store: Store,
    bootstrap_servers: str,
    topic: str,
    group: str,
    partition: int,
    offset: int,
    reason: str,
    *,
    requested_by: str | None = None,
    wait_s: float = 60.0,
) -> SkipOutcome:
    """Records the request, then commits it (idle group) or waits for the owning worker.

    Refuses an offset past the partition's end (the group would start over from the
    beginning) and a partition the topic does not have.
    """
    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id="appstore-skip",
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if partition not in partitions:
            raise InvalidInput("skip-to", f"{topic} has no partition {partition}")
        end = consumer.end_offsets([tp])[tp]
        if offset > end:
            raise InvalidInput(
                "skip-to", f"offset {offset} is past the end of {topic}-{partition} ({end})"
            )
        ingest.request_skip(
            store, group, topic, partition, offset, reason, requested_by or _operator()
        )
        consumer.assign([tp])
        committed = consumer.committed(tp)
        start = committed if committed is not None else consumer.beginning_offsets([tp])[tp]
        try:
            if start < offset:
                consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
        except GROUP_ACTIVE_ERRORS:
            pass  # running workers: the owner of the partition carries it out
        else:
            offsets = ingest.consumer_offsets(store, group, topic)
            if offsets is not None and partition in offsets.pending:
                name = worker_name("appstore consume --skip-to")
                ingest.record_skip(store, group, topic, partition, start, max(start, offset), name)
                return SkipOutcome(offsets.id, partition, offset, start, name)
    finally:
        consumer.close(autocommit=False)
    return _wait_until_applied(store, group, topic, partition, offset, wait_s)


def _wait_until_applied(
    store: Store, group: str, topic: str, partition: int, offset: int, wait_s: float
) -> SkipOutcome:
    aggregate_id = offsets_id(group, topic)
    deadline = time.monotonic() + wait_s
    while True:
        offsets = ingest.consumer_offsets(store, group, topic)
        if offsets is not None and partition not in offsets.pending:
            skipped = ingest.last_skip(store, group, topic, partition)
            if skipped is not None:
                return SkipOutcome(
                    aggregate_id, partition, offset, skipped.from_offset, skipped.applied_by
                )
        if time.monotonic() >= deadline:
            return SkipOutcome(aggregate_id, partition, offset, None, None)
        time.sleep(0.25)


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this container
        return "unknown"
