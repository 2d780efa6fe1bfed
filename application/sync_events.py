"""Connector sync reports (Kafka or HTTP) applied to installations, exactly once per event_id.

The message connectors send, as a Kafka record value (key = the installation id) or as the
body of `POST /v1/sync-events` (JSON, UTF-8)::

    {"event_id": "run-42-orders", "installation_id": "<uuid>", "app_id": "<uuid>",
     "kind": "failure", "area": "orders", "error_code": "SKU_NOT_FOUND",
     "message": "3 orders reference unknown SKUs", "object_ids": ["o-1", "o-2"],
     "occurred_at": "2026-11-25T20:00:00Z"}

Unknown fields are ignored, so connectors may send newer fields to an older store. A
success may carry `"error_code": null` or leave it out. `occurred_at` may use any UTC offset
(`Z`, `+02:00`, `-05:30`); it is stored in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from application.store import Store
from domain.claims import SyncEventReceipt, sync_receipt_id
from domain.errors import DomainError, InstallationNotFound
from domain.incident import SyncEvent
from domain.installation import Installation

# A connector may report many affected objects; the domain keeps the newest 100 anyway.
MAX_OBJECT_IDS = 10_000


class SyncEventMessage(BaseModel):
    """One connector sync result, as published to `appstore.sync-events`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    event_id: str = Field(min_length=1, max_length=200, description="unique per installation")
    installation_id: UUID
    app_id: UUID | None = Field(default=None, description="checked against the installation")
    kind: Literal["failure", "success"]
    area: str = Field(min_length=1, max_length=64, description="orders, inventory, …")
    error_code: str | None = Field(
        default=None,
        max_length=120,
        description="required for a failure; null or absent is fine for a success",
    )
    message: str = Field(default="", max_length=20_000)
    object_ids: list[str] = Field(default_factory=list, max_length=MAX_OBJECT_IDS)
    occurred_at: AwareDatetime

    @field_validator("occurred_at", mode="after")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+00:01 is before year 1 in UTC
            raise ValueError("occurred_at is out of range once converted to UTC") from None

    @model_validator(mode="after")
    def _failure_has_error_code(self) -> SyncEventMessage:
        if self.kind == "failure" and not self.error_code:
            raise ValueError("error_code is required when kind is 'failure'")
        return self

    def to_sync_event(self) -> SyncEvent:
        """The domain's view of this message."""
        return SyncEvent(
            event_id=self.event_id,
            installation_id=self.installation_id,
            kind=self.kind,
            area=self.area,
            occurred_at=self.occurred_at,
            error_code=self.error_code or "",
            message=self.message,
            object_ids=list(self.object_ids),
            app_id=self.app_id,
        )

    def to_json_bytes(self) -> bytes:
        """The wire form (what the producer helper sends)."""
        return self.model_dump_json().encode()


@dataclass(frozen=True)
class SyncResult:
    """What one report did: the incidents it touched, or nothing for a `duplicate`."""

    event_id: str
    installation_id: UUID
    duplicate: bool
    incident_ids: list[UUID]
    position: int | None


def record_sync_event(store: Store, sync: SyncEvent) -> SyncResult:
    """Applies one connector sync report, exactly once per (installation, event_id)."""
    sync.check()

    def attempt() -> SyncResult:
        receipt_id = sync_receipt_id(sync.installation_id, sync.event_id)
        if store.load(receipt_id, SyncEventReceipt) is not None:
            return SyncResult(sync.event_id, sync.installation_id, True, [], None)
        (result,) = _record_batch(store, [sync])
        if isinstance(result, Exception):
            raise result
        return result

    return store.retrying(attempt)


def record_sync_events(store: Store, batch: Iterable[SyncEvent]) -> list[SyncResult | Exception]:
    """Applies many sync reports in one transaction; falls back to one by one when the
    batch collides (a redelivered event_id, or another writer on an installation).

    Each item's result is a SyncResult, or the DomainError that refused it.
    """
    items = list(batch)
    try:
        return _record_batch(store, items)
    except IntegrityError:
        results: list[SyncResult | Exception] = []
        for sync in items:
            try:
                results.append(record_sync_event(store, sync))
            except DomainError as error:  # reported per item, the batch goes on
                results.append(error)
        return results


def _record_batch(store: Store, items: list[SyncEvent]) -> list[SyncResult | Exception]:
    now = store.clock.now()
    installations: dict[UUID, Installation | None] = {}
    receipts: dict[UUID, SyncEventReceipt] = {}
    results: list[SyncResult | Exception] = []
    for sync in items:
        try:
            sync.check()
            receipt_id = sync_receipt_id(sync.installation_id, sync.event_id)
            # Redeliveries from an earlier batch are not looked up one by one (that read
            # per message halved throughput): their receipt collides on save, and the
            # batch is then retried item by item, where duplicates are found.
            if receipt_id in receipts:
                results.append(SyncResult(sync.event_id, sync.installation_id, True, [], None))
                continue
            if sync.installation_id not in installations:
                installations[sync.installation_id] = store.load(sync.installation_id, Installation)
            found = installations[sync.installation_id]
            if found is None or (sync.app_id is not None and found.app_id != sync.app_id):
                raise InstallationNotFound(f"installation {sync.installation_id} not found")
            if found.has_applied(sync.event_id):  # e.g. from Kafka, which keeps no receipt
                results.append(SyncResult(sync.event_id, sync.installation_id, True, [], None))
                continue
            before = len(found.pending_events)
            incident_ids = found.record_sync(sync, now)
            if len(found.pending_events) > before:
                receipts[receipt_id] = SyncEventReceipt(
                    installation_id=sync.installation_id, event_id=sync.event_id, received_at=now
                )
            results.append(
                SyncResult(sync.event_id, sync.installation_id, False, incident_ids, None)
            )
        except DomainError as error:  # a refused item must not sink the batch
            results.append(error)
    position = store.save(*[i for i in installations.values() if i], *receipts.values())
    return [
        replace(r, position=position) if isinstance(r, SyncResult) and not r.duplicate else r
        for r in results
    ]
