"""An operator's decisions about where a consumer group reads its topic: skips of a stalled
partition, asked for and carried out as events (domain/ingest.py)."""

from __future__ import annotations

from uuid import UUID

from application.store import Store
from domain.ingest import ConsumerOffsets, PartitionProgress, offsets_id, progress_id


def consumer_offsets(store: Store, group: str, topic: str) -> ConsumerOffsets | None:
    """The group's offsets decisions on this topic, if any was ever made."""
    return store.load(offsets_id(group, topic), ConsumerOffsets)


def request_skip(
    store: Store,
    group: str,
    topic: str,
    partition: int,
    to_offset: int,
    reason: str,
    requested_by: str,
) -> UUID:
    """Asks the partition's consumer to continue at `to_offset`; the decisions' id."""

    def attempt() -> UUID:
        offsets = consumer_offsets(store, group, topic) or ConsumerOffsets(group=group, topic=topic)
        offsets.request_skip(partition, to_offset, reason, requested_by, store.clock.now())
        store.save(offsets)
        return offsets.id

    return store.retrying(attempt)


def record_skip(
    store: Store,
    group: str,
    topic: str,
    partition: int,
    from_offset: int,
    to_offset: int,
    applied_by: str,
) -> None:
    """The group now reads `partition` from `to_offset` (it was at `from_offset`); the
    store's progress on the partition moves there too, or a restart would read it again."""

    def attempt() -> None:
        offsets = consumer_offsets(store, group, topic) or ConsumerOffsets(group=group, topic=topic)
        offsets.record_skip(partition, from_offset, to_offset, applied_by, store.clock.now())
        progress = store.load(progress_id(topic, partition), PartitionProgress)
        if progress is not None and progress.next_offset < to_offset:
            progress.advance(to_offset, {})
            store.save(offsets, progress)
        else:
            store.save(offsets)

    store.retrying(attempt)


def last_skip(
    store: Store, group: str, topic: str, partition: int
) -> ConsumerOffsets.Skipped | None:
    """The latest skip carried out on this partition, if any."""
    found = None
    for stored in store.events_of(offsets_id(group, topic)):
        if isinstance(stored, ConsumerOffsets.Skipped) and stored.partition == partition:
            found = stored
    return found
