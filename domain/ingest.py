"""ConsumerOffsets: an operator's decisions about where a consumer group reads a topic.

A partition that holds a batch nobody can read (an unknown codec, a corrupt record) stops
its consumer at that offset; only an operator may move it on. Such a skip loses reports, so
it is asked for and carried out as events: the audit history says who skipped what and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput

MAX_REASON = 500


@dataclass(frozen=True)
class PendingSkip:
    """A skip asked for and not yet carried out by the consumer that owns the partition."""

    to_offset: int
    reason: str
    requested_by: str
    requested_at: datetime


class ConsumerOffsets(Aggregate):
    """One consumer group on one topic; its id derives from both (`offsets_id`)."""

    class Opened(Aggregate.Created):
        group: str
        topic: str

    class SkipRequested(Aggregate.Event):
        partition: int
        to_offset: int
        reason: str
        requested_by: str
        requested_at: datetime

    class Skipped(Aggregate.Event):
        partition: int
        from_offset: int
        to_offset: int
        applied_by: str
        applied_at: datetime

    @staticmethod
    def create_id(group: str, topic: str) -> UUID:
        return offsets_id(group, topic)

    @event(Opened)
    def __init__(self, group: str, topic: str) -> None:
        self.group = group
        self.topic = topic
        self.pending: dict[int, PendingSkip] = {}
        self.skipped: int = 0  # messages given up on by skips so far, all partitions

    def request_skip(
        self, partition: int, to_offset: int, reason: str, requested_by: str, now: datetime
    ) -> None:
        """Asks the partition's consumer to continue at `to_offset` (a newer ask replaces it)."""
        if partition < 0:
            raise InvalidInput("partition", "must be 0 or more")
        if to_offset < 0:
            raise InvalidInput("offset", "must be 0 or more")
        reason = reason.strip()
        if not reason:
            raise InvalidInput("reason", "say why these messages may be given up")
        if len(reason) > MAX_REASON:
            raise InvalidInput("reason", f"at most {MAX_REASON} characters")
        self._skip_requested(partition, to_offset, reason, requested_by or "unknown", now)

    @event(SkipRequested)
    def _skip_requested(
        self, partition: int, to_offset: int, reason: str, requested_by: str, requested_at: datetime
    ) -> None:
        self.pending[partition] = PendingSkip(to_offset, reason, requested_by, requested_at)

    def record_skip(
        self, partition: int, from_offset: int, to_offset: int, applied_by: str, now: datetime
    ) -> None:
        """The group now reads `partition` from `to_offset` (it was at `from_offset`)."""
        self._skipped(partition, from_offset, to_offset, applied_by, now)

    @event(Skipped)
    def _skipped(
        self,
        partition: int,
        from_offset: int,
        to_offset: int,
        applied_by: str,
        applied_at: datetime,
    ) -> None:
        pending = self.pending.get(partition)
        if pending is not None and pending.to_offset <= to_offset:
            del self.pending[partition]
        self.skipped += max(0, to_offset - from_offset)


def offsets_id(group: str, topic: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:consumer-offsets:{group}:{topic}")


class PartitionProgress(Aggregate):
    """How far the store has applied one partition of a topic (for every consumer group).

    The consumer saves it in the same transaction as the events a batch of that partition
    caused, so it is never behind or ahead of them: a record below `next_offset` has had
    its effect, whatever offset the Kafka group committed. `dead_letters` names the
    records of the last batch that went to the DLQ instead (the worker may have died before
    sending them; whoever reads the batch again sends them, never applies them).
    """

    class Opened(Aggregate.Created):
        topic: str
        partition: int

    class Advanced(Aggregate.Event):
        from_offset: int
        to_offset: int
        # [{"offset": int, "reason": str, "detail": str}] of the records refused
        dead_letters: list[dict[str, Any]]

    @staticmethod
    def create_id(topic: str, partition: int) -> UUID:
        return progress_id(topic, partition)

    @event(Opened)
    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.next_offset = 0
        # As in the last `Advanced` (plain JSON values: snapshots keep them as they are).
        self.dead_letters: list[dict[str, Any]] = []

    def applied(self, offset: int) -> bool:
        """Whether the record at `offset` already had its effect (or went to the DLQ)."""
        return offset < self.next_offset

    def refused(self, offset: int) -> tuple[str, str] | None:
        """The (reason, detail) of a record of the last batch that went to the DLQ."""
        for letter in self.dead_letters:
            if letter["offset"] == offset:
                return letter["reason"], letter["detail"]
        return None

    def advance(self, to_offset: int, dead_letters: dict[int, tuple[str, str]]) -> None:
        """Records up to `to_offset` (excluded) are applied; `dead_letters` were refused."""
        if to_offset <= self.next_offset:
            raise ValueError(f"offset {to_offset} is not past {self.next_offset}")
        letters = [
            {"offset": o, "reason": reason, "detail": detail}
            for o, (reason, detail) in sorted(dead_letters.items())
        ]
        self._advanced(self.next_offset, to_offset, letters)

    @event(Advanced)
    def _advanced(
        self, from_offset: int, to_offset: int, dead_letters: list[dict[str, Any]]
    ) -> None:
        self.next_offset = to_offset
        self.dead_letters = dead_letters


def progress_id(topic: str, partition: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:partition-progress:{topic}:{partition}")
