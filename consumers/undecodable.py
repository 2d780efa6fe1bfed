"""Which partition a poll could not decode, found on the error kafka-python raised.

kafka-python 3.0 raises a codec or CRC failure (`UnsupportedCodecError`, `CorruptRecordError`,
a decompressor's own error…) from `poll()` without naming the partition. Worse, it keeps the
half-read records of that partition in place, and the next `poll()` loops on them forever
without returning: one unreadable batch froze the whole consumer. The failing records object
is on the error's traceback; `undecodable_batch` reads its partition and offsets there and
drains it, so the next fetch of that partition starts afresh (and fails again, loudly).
Tested end to end against a real broker (tests/test_consumer_stalls.py): a kafka-python
release that moves these internals makes those tests fail, not the consumer hang silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka.consumer.fetcher import Fetcher
from kafka.structs import TopicPartition


@dataclass(frozen=True)
class UndecodableBatch:
    """A fetched batch of `partition` that could not be read."""

    partition: TopicPartition
    offset: int  # the first offset not read: where the partition is stuck
    next_offset: int | None  # the offset after the failing batch, if its header was read
    error: str


def undecodable_batch(error: BaseException) -> UndecodableBatch | None:
    """The batch `error` was raised on while kafka-python parsed fetched records, else None
    (the error came from elsewhere, e.g. the network). Drains the broken records object."""
    records: Any = None
    batch: Any = None
    parsed_partition: TopicPartition | None = None
    for frame_locals in _frames(error.__traceback__):
        owner = frame_locals.get("self")
        if isinstance(owner, Fetcher.PartitionRecords):
            records = owner
            batch = frame_locals.get("batch", batch)
        elif isinstance(owner, Fetcher) and isinstance(frame_locals.get("tp"), TopicPartition):
            # raised while checking a completed fetch (e.g. no complete record in it)
            parsed_partition = frame_locals["tp"]
    described = f"{type(error).__name__}: {error}"[:500]
    if records is not None:
        partition: TopicPartition = records.topic_partition
        offset = int(records.next_fetch_offset)
        records.drain()  # else the next poll spins on these records forever
        return UndecodableBatch(partition, offset, _batch_end(batch, offset), described)
    if parsed_partition is not None:
        return UndecodableBatch(parsed_partition, -1, None, described)
    return None


def _frames(tb: TracebackType | None) -> list[dict[str, Any]]:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame.f_locals)
        tb = tb.tb_next
    return frames


def _batch_end(batch: Any, offset: int) -> int | None:
    """The offset after `batch` (its header is readable even when its records are not)."""
    try:
        end = int(batch.next_offset)
    except Exception:  # no batch at hand, or a legacy message set without that field
        return None
    return end if end > offset else None
