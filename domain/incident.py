"""Incidents: sync problems an app reports for one installation, and the reports themselves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain import values as v
from domain.errors import InvalidInput
from domain.values import IncidentStatus

# Affected object ids kept per incident (the newest win); connectors may send thousands.
MAX_OBJECT_IDS = 100
# A connector's message is kept up to this many characters.
MAX_MESSAGE = 2000
# Event ids of the newest reports applied that an installation keeps, so a report re-sent
# at a new Kafka offset (a producer retry) is recognised without a receipt per message.
RECENT_REPORTS = 500


@dataclass
class Incident:
    """A sync problem reported by the app, grouped by area + error code while unresolved."""

    id: UUID
    area: str
    error_code: str
    message: str
    object_ids: list[str]
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    status: IncidentStatus = IncidentStatus.OPEN
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def is_unresolved(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    @property
    def is_open(self) -> bool:
        """Neither acknowledged nor resolved yet."""
        return self.status is IncidentStatus.OPEN

    @classmethod
    def raised(
        cls,
        incident_id: UUID,
        area: str,
        error_code: str,
        message: str,
        object_ids: list[str],
        occurred_at: datetime,
    ) -> Incident:
        """A new open incident, first and last seen when its failure occurred."""
        ids = newest_object_ids(object_ids)
        return cls(incident_id, area, error_code, message, ids, occurred_at, occurred_at)

    def recur(self, message: str, object_ids: list[str], occurred_at: datetime) -> None:
        """The same failure again: counted, the latest message, the newest object ids."""
        self.count += 1
        self.message = message
        self.object_ids = newest_object_ids(self.object_ids + object_ids)
        self.first_seen = min(self.first_seen, occurred_at)
        self.last_seen = max(self.last_seen, occurred_at)

    def acknowledge(self, at: datetime) -> None:
        self.status = IncidentStatus.ACKNOWLEDGED
        self.acknowledged_at = at

    def resolve(self, at: datetime, resolution: str) -> None:
        self.status = IncidentStatus.RESOLVED
        self.resolved_at = at
        self.resolution = resolution


@dataclass(frozen=True)
class SyncEvent:
    """A connector's report of one sync run (from Kafka or HTTP)."""

    event_id: str
    installation_id: UUID
    kind: str  # "failure" | "success"
    area: str
    occurred_at: datetime
    error_code: str = ""
    message: str = ""
    object_ids: list[str] = field(default_factory=list)
    app_id: UUID | None = None

    @property
    def kept_message(self) -> str:
        return self.message[:MAX_MESSAGE]

    @property
    def kept_object_ids(self) -> list[str]:
        return [str(o) for o in self.object_ids]

    def check(self) -> None:
        """Raises InvalidInput naming the first field that is not acceptable."""
        v.text(self.event_id, "event_id", max_length=200)
        if self.kind not in ("failure", "success"):
            raise InvalidInput("kind", "must be 'failure' or 'success'")
        v.text(self.area, "area", max_length=64)
        if self.kind == "failure":
            v.text(self.error_code, "error_code", max_length=120)
        if self.occurred_at.tzinfo is None:
            raise InvalidInput("occurred_at", "must carry a timezone")


def newest_object_ids(object_ids: list[str]) -> list[str]:
    """The affected object ids an incident keeps: distinct, the newest MAX_OBJECT_IDS."""
    return list(dict.fromkeys(object_ids))[-MAX_OBJECT_IDS:]


def remember_report(installation: Any, event_id: str | None) -> None:
    """Adds an applied report's event id to `installation.recent_reports`, which keeps the
    newest RECENT_REPORTS (installations stored before it existed start with none)."""
    if not event_id:
        return  # a seller's own resolution
    recent: dict[str, None] = vars(installation).setdefault("recent_reports", {})
    recent.pop(event_id, None)
    recent[event_id] = None
    while len(recent) > RECENT_REPORTS:
        del recent[next(iter(recent))]


def incident_id_for(installation_id: UUID, event_id: str) -> UUID:
    """An incident's id, derived from the event that raised it (stable across replays)."""
    return uuid5(NAMESPACE_URL, f"appstore:incident:{installation_id}:{event_id}")


def open_incident(incidents: Iterable[Incident], area: str, error_code: str) -> Incident | None:
    """The unresolved incident grouping this area + error code, if any."""
    return next(
        (i for i in incidents if i.is_unresolved and (i.area, i.error_code) == (area, error_code)),
        None,
    )


def superseded_by(incidents: Iterable[Incident], success: SyncEvent) -> list[UUID]:
    """The unresolved incidents of a success's area that it supersedes (seen no later)."""
    return [
        i.id
        for i in incidents
        if i.is_unresolved and i.area == success.area and i.last_seen <= success.occurred_at
    ]
