"""Which event becomes which webhook topic, and the `data` each topic carries.

Adding a topic is a row in TOPIC_EVENTS per event class that produces it (and its name
in domain.webhook.TOPICS, so subscriptions may ask for it; a test keeps the two in step).
`data` gets the event and the installation it belongs to, as it is after the event (None
for events of other aggregates), and must name `app_id`: the app whose subscriptions
receive it. docs/webhooks.md shows every payload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.consent import in_scope_order
from domain.installation import Installation
from domain.review import Review

Data = dict[str, Any]
# Granting more scopes and taking one back are one topic: the installation's access changed.
SCOPES_CHANGED = "installation.scopes_changed"


@dataclass(frozen=True)
class Topic:
    """Events of class `event` are delivered as topic `name` with `data(event, installation)`;
    the event's attribute `at` is the delivery's `created_at`."""

    event: type[Any]
    name: str
    data: Callable[[Any, Data | None], Data]
    at: str


def when(value: datetime | None) -> str | None:
    """A time as the API writes it (ISO 8601 UTC, `Z`)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _installation(i: Data | None) -> Data:
    """What every installation topic says about the installation."""
    assert i is not None, "an installation topic needs its installation"
    return {
        "installation_id": str(i["installation_id"]),
        "app_id": str(i["app_id"]),
        "seller_id": str(i["seller_id"]),
    }


def _authorized(e: Installation.Authorized, i: Data | None) -> Data:
    assert i is not None
    return {
        **_installation(i),
        "duration": i["duration"],
        "scopes": list(i["scopes"]),
        "authorized_at": when(e.authorized_at),
        "expires_at": when(e.expires_at),
    }


def _renewed(e: Installation.Renewed, i: Data | None) -> Data:
    return {
        **_installation(i),
        "duration": str(e.duration),
        "renewed_at": when(e.renewed_at),
        "expires_at": when(e.expires_at),
    }


def _cancelled(e: Installation.Cancelled, i: Data | None) -> Data:
    return {**_installation(i), "cancelled_at": when(e.cancelled_at), "reason": e.reason}


def _expired(e: Installation.Expired, i: Data | None) -> Data:
    return {**_installation(i), "expired_at": when(e.expired_at)}


def _expiring(e: Installation.ExpiryWarned, i: Data | None) -> Data:
    return {**_installation(i), "expires_at": when(e.expires_at), "days_before": e.days_before}


def _scopes_granted(e: Installation.ScopesGranted, i: Data | None) -> Data:
    assert i is not None
    return {
        **_installation(i),
        "granted": list(e.scopes),
        "revoked": [],
        "scopes": list(i["scopes"]),
        "changed_at": when(e.granted_at),
    }


def _scope_revoked(e: Installation.ScopeRevoked, i: Data | None) -> Data:
    assert i is not None
    return {
        **_installation(i),
        "granted": [],
        "revoked": [e.scope],
        "scopes": list(i["scopes"]),
        "changed_at": when(e.revoked_at),
    }


def _incident_raised(e: Installation.IncidentRaised, i: Data | None) -> Data:
    return {
        **_installation(i),
        "incident_id": _text(e.incident_id),
        "area": e.area,
        "error_code": e.error_code,
        "message": e.message,
        "object_ids": list(e.object_ids),
        "occurred_at": when(e.occurred_at),
    }


def _incident_resolved(e: Installation.IncidentResolved, i: Data | None) -> Data:
    return {
        **_installation(i),
        "incident_id": _text(e.incident_id),
        "resolved_at": when(e.resolved_at),
        "resolution": e.resolution,
    }


def _review_posted(e: Review.Posted, i: Data | None) -> Data:
    return {
        "review_id": str(e.originator_id),
        "app_id": str(e.app_id),
        "seller_id": str(e.seller_id),
        "seller_name": e.seller_name,
        "rating": e.rating,
        "body": e.body,
        "posted_at": when(e.posted_at),
    }


def installation_changes(e: Installation.Event, row: dict[str, Any]) -> dict[str, Any]:
    """What an event changes in what payloads say about its installation (its duration,
    the scopes granted now)."""
    if isinstance(e, Installation.Renewed):
        return {"duration": str(e.duration)}
    if isinstance(e, Installation.Authorized) and e.scopes is not None:
        return {"scopes": list(e.scopes)}
    if isinstance(e, Installation.ScopesGranted):
        return {"scopes": in_scope_order([*row["scopes"], *e.scopes])}
    if isinstance(e, Installation.ScopeRevoked):
        return {"scopes": [s for s in row["scopes"] if s != e.scope]}
    return {}


TOPIC_EVENTS: tuple[Topic, ...] = (
    Topic(Installation.Authorized, "installation.authorized", _authorized, "authorized_at"),
    Topic(Installation.Renewed, "installation.renewed", _renewed, "renewed_at"),
    Topic(Installation.Cancelled, "installation.cancelled", _cancelled, "cancelled_at"),
    Topic(Installation.Expired, "installation.expired", _expired, "expired_at"),
    Topic(Installation.ExpiryWarned, "installation.expiring", _expiring, "warned_at"),
    Topic(Installation.ScopesGranted, SCOPES_CHANGED, _scopes_granted, "granted_at"),
    Topic(Installation.ScopeRevoked, SCOPES_CHANGED, _scope_revoked, "revoked_at"),
    Topic(Installation.IncidentRaised, "incident.raised", _incident_raised, "occurred_at"),
    Topic(Installation.IncidentResolved, "incident.resolved", _incident_resolved, "resolved_at"),
    Topic(Review.Posted, "review.posted", _review_posted, "posted_at"),
)


def ping_data(webhook_id: UUID, app_id: UUID) -> Data:
    """The `data` of a `webhook.test` delivery."""
    return {
        "webhook_id": str(webhook_id),
        "app_id": str(app_id),
        "message": "This is a test event from App & Service Store.",
    }
