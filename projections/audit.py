"""The event history as ops read it: one aggregate's events, or the global log by position.

Reads the event store directly (the log itself is the read model for audits).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from application.store import Store

LOG_PAGE = 1000
# Secrets are stored only as hashes, but even hashes stay out of audit screens and exports.
_HIDDEN = ("hash", "secret")


@dataclass(frozen=True)
class AuditEvent:
    """One stored event, decoded for people."""

    position: int
    aggregate_id: UUID
    version: int
    event_type: str
    timestamp: str
    payload: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "aggregate_id": str(self.aggregate_id),
            "version": self.version,
            "event_type": self.event_type,
            "timestamp": self.timestamp,
            "payload": self.payload,
        }


def jsonable(value: Any) -> Any:
    """Event state as plain JSON values (UUID, datetime, Decimal, enums → strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID | Decimal):
        return str(value)
    return value


def redacted(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with every hash or secret field replaced by "<redacted>"."""
    return {k: ("<redacted>" if any(h in k for h in _HIDDEN) else v) for k, v in state.items()}


def _decode(
    store: Store, position: int, aggregate_id: UUID, version: int, topic: str, state: bytes
) -> AuditEvent:
    data = store.decode_state(state)
    timestamp = data.pop("timestamp", None)
    data.pop("originator_topic", None)
    # topic looks like "domain.installation:Installation.Renewed"
    event_type = topic.rsplit(":", 1)[-1]
    return AuditEvent(
        position=position,
        aggregate_id=aggregate_id,
        version=version,
        event_type=event_type,
        timestamp=timestamp.isoformat() if isinstance(timestamp, datetime) else str(timestamp),
        payload=redacted(jsonable(data)),
    )


def _from_notification(store: Store, n: Notification) -> AuditEvent:
    aggregate_id = (
        n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))
    )
    return _decode(store, n.id, aggregate_id, n.originator_version, n.topic, n.state)


def aggregate_history(
    store: Store, aggregate_id: UUID, *, up_to_version: int | None = None
) -> list[AuditEvent]:
    """Every event of one aggregate in version order, with its global position."""
    events = [
        _decode(store, e.position, e.aggregate_id, e.version, e.topic, e.state)
        for e in store.stored_events(aggregate_id)
    ]
    if up_to_version is not None:
        events = [e for e in events if e.version <= up_to_version]
    return events


def read_log(store: Store, after: int = 0, limit: int = 100) -> list[AuditEvent]:
    """At most `limit` events of the global log after position `after`."""
    notifications = store.notifications(after, limit, inclusive=False)
    return [_from_notification(store, n) for n in notifications]


def iter_log(store: Store, after: int = 0, limit: int | None = None) -> Iterator[AuditEvent]:
    """The global log after `after`, read in pages (for exports of any size)."""
    emitted = 0
    position = after
    while limit is None or emitted < limit:
        page = read_log(
            store, position, LOG_PAGE if limit is None else min(LOG_PAGE, limit - emitted)
        )
        if not page:
            return
        yield from page
        emitted += len(page)
        position = page[-1].position


def state_at(store: Store, aggregate_id: UUID, version: int | None = None) -> Any:
    """The aggregate as it was at `version` (default: now), or None if there is no such version."""
    return store.load_version(aggregate_id, version)
