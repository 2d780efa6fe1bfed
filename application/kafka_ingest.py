"""Connector reports from Kafka applied in batches, exactly once, without a receipt each.

The Kafka path only (HTTP keeps a receipt per report, application/sync_events.py):

- per partition, a `PartitionProgress` saved in the same transaction as the incident events
  of a batch says how far the store has applied that partition: a record below it had its
  effect (or went to the DLQ) and is never applied again, whatever offset the Kafka group
  committed (a crash between the store commit and the Kafka commit, a rebalance);
- a report re-sent at a new offset with the same event_id (a producer retry) is recognised
  by its installation, which keeps the event ids of its newest applied reports
  (`Installation.has_applied`, domain.incident.RECENT_REPORTS);
- a report that changes nothing (a success with nothing to resolve) writes nothing but the
  partition's progress, once per batch.

`KafkaIngest` keeps the installations and progresses it wrote between batches (one consumer,
one thread); one query per batch tells which of them another writer moved on since.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from application.store import Store
from application.sync_events import SyncResult
from domain.errors import DomainError, InstallationNotFound
from domain.incident import SyncEvent
from domain.ingest import PartitionProgress, progress_id
from domain.installation import Installation

# Installations kept between batches (each holds its incidents and newest event ids).
CACHED_INSTALLATIONS = 2000


@dataclass(frozen=True)
class Refusal:
    """Why a record goes to the DLQ instead: a reason code and a short detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Record:
    """One Kafka record: where it is, and the report it holds or why it is refused."""

    partition: int
    offset: int
    report: SyncEvent | Refusal


class KafkaIngest:
    """Applies batches of one topic's records; `classify` names the refusal of an error."""

    def __init__(
        self,
        store: Store,
        topic: str,
        classify: Callable[[Exception], Refusal],
        *,
        cached: int = CACHED_INSTALLATIONS,
    ) -> None:
        self.store = store
        self.topic = topic
        self.classify = classify
        self.cached = cached
        self._installations: OrderedDict[UUID, Installation | None] = OrderedDict()
        self._progress: dict[int, PartitionProgress] = {}

    def resume_offset(self, partition: int) -> int | None:
        """Where a new owner of `partition` starts: after what the store applied (the
        refused records of its last batch again: their dead letters may be unsent), or
        None when the store never applied any of it (then the group's commit says)."""
        self._progress.pop(partition, None)
        progress = self.store.load(progress_id(self.topic, partition), PartitionProgress)
        if progress is None:
            return None
        self._progress[partition] = progress
        return min([progress.next_offset, *(int(d["offset"]) for d in progress.dead_letters)])

    def apply(
        self, records: Sequence[Record], *, isolate: bool = False
    ) -> list[SyncResult | Refusal | None]:
        """One result per record, in order (None: a refused record already dead-lettered);
        one transaction, retried on a lost race.

        With `isolate`, an unexpected error applying one report refuses that report (call
        it with one record at a time to find the report a batch trips on)."""
        return self.store.retrying(lambda: self._attempt(records, isolate))

    # --- one attempt --------------------------------------------------------------------------
    def _attempt(
        self, records: Sequence[Record], isolate: bool
    ) -> list[SyncResult | Refusal | None]:
        self._refresh(records)
        now = self.store.clock.now()
        touched: dict[UUID, Any] = {}
        try:
            results: list[SyncResult | Refusal | None] = []
            letters: dict[int, dict[int, tuple[str, str]]] = {}
            last: dict[int, int] = {}
            for record in records:
                progress = self._progress_of(record.partition)
                if progress.applied(record.offset):  # a redelivery
                    results.append(_again(record, progress))
                    continue
                last[record.partition] = max(last.get(record.partition, -1), record.offset)
                result = self._one(record.report, now, touched, isolate)
                if isinstance(result, Refusal):
                    by_offset = letters.setdefault(record.partition, {})
                    by_offset[record.offset] = (result.reason, result.detail)
                results.append(result)
            for partition, offset in last.items():
                progress = self._progress_of(partition)
                progress.advance(offset + 1, letters.get(partition, {}))
                touched[progress.id] = progress
            position = self.store.save(*touched.values())
        except BaseException:
            self._forget(touched)  # their state holds events that were never stored
            raise
        return [
            replace(r, position=position) if isinstance(r, SyncResult) and not r.duplicate else r
            for r in results
        ]

    def _one(
        self, report: SyncEvent | Refusal, now: Any, touched: dict[UUID, Any], isolate: bool
    ) -> SyncResult | Refusal:
        if isinstance(report, Refusal):
            return report
        found = self._installation(report.installation_id)
        try:
            if found is None or (report.app_id is not None and found.app_id != report.app_id):
                raise InstallationNotFound(f"installation {report.installation_id} not found")
            if found.has_applied(report.event_id):  # re-sent at another offset
                return SyncResult(report.event_id, report.installation_id, True, [], None)
            incident_ids = found.record_sync(report, now)
        except DomainError as error:
            return self.classify(error)
        except Exception as error:
            if not isolate:
                raise
            self._forget({report.installation_id: found})
            touched.pop(report.installation_id, None)
            return self.classify(error)
        if found.pending_events:
            touched[found.id] = found
        return SyncResult(report.event_id, report.installation_id, False, incident_ids, None)

    # --- what is kept between batches -------------------------------------------------------
    def _refresh(self, records: Sequence[Record]) -> None:
        """Drops the kept aggregates another writer appended to (one query for all)."""
        kept: dict[UUID, int] = {}
        for record in records:
            if isinstance(record.report, SyncEvent):
                found = self._installations.get(record.report.installation_id)
                if found is not None:
                    kept[found.id] = found.version
            progress = self._progress.get(record.partition)
            if progress is not None:
                kept[progress.id] = progress.version
        for aggregate_id in self.store.changed(kept):
            self._installations.pop(aggregate_id, None)
            for partition, progress in list(self._progress.items()):
                if progress.id == aggregate_id:
                    del self._progress[partition]
        # Unknown installations are asked again (one may have been installed since).
        for installation_id in [i for i, found in self._installations.items() if found is None]:
            del self._installations[installation_id]

    def _forget(self, aggregates: dict[UUID, Any]) -> None:
        for aggregate_id in aggregates:
            self._installations.pop(aggregate_id, None)
        for partition, progress in list(self._progress.items()):
            if progress.id in aggregates:
                del self._progress[partition]

    def _installation(self, installation_id: UUID) -> Installation | None:
        if installation_id in self._installations:
            self._installations.move_to_end(installation_id)
            return self._installations[installation_id]
        found = self.store.load(installation_id, Installation, cached=False)
        self._installations[installation_id] = found
        while len(self._installations) > self.cached:
            self._installations.popitem(last=False)
        return found

    def _progress_of(self, partition: int) -> PartitionProgress:
        progress = self._progress.get(partition)
        if progress is None:
            pid = progress_id(self.topic, partition)
            progress = self.store.load(pid, PartitionProgress) or PartitionProgress(
                topic=self.topic, partition=partition
            )
            self._progress[partition] = progress
        return progress


def _again(record: Record, progress: PartitionProgress) -> SyncResult | Refusal | None:
    """A record the store already applied: a duplicate, its dead letter again when it was
    refused in the partition's last batch (maybe unsent), None for an older refusal."""
    refused = progress.refused(record.offset)
    if refused is not None:
        return Refusal(*refused)
    report = record.report
    if isinstance(report, Refusal):  # its batch was dead-lettered and committed
        return None
    return SyncResult(report.event_id, report.installation_id, True, [], None)
