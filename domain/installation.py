"""Installation: one seller's authorization of one app, its lifecycle, the scopes the seller
consented to (domain/consent.py) and its incidents."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import consent, values
from domain.errors import (
    AlreadyCancelled,
    AuthorizationLapsed,
    IncidentAlreadyResolved,
    IncidentNotFound,
    IncidentNotOpen,
    InstallationCancelled,
    InstallationNotActive,
    NotCancellable,
    NotDue,
    NotExpirable,
    NotPendingAuthorization,
    NotRenewable,
)
from domain.incident import (
    Incident,
    SyncEvent,
    incident_id_for,
    open_incident,
    remember_report,
    superseded_by,
)
from domain.installation_snapshot import InstallationSnapshot
from domain.values import Conditions, Duration, InstallationStatus, expiry_warning_due

# A seller who leaves the authorization step open longer than this must start again.
AUTHORIZATION_WINDOW = timedelta(minutes=30)


class Installation(Aggregate):
    """One seller × one app. Created pending authorization by `Installed`."""

    Snapshot = InstallationSnapshot
    # The most urgent expiry warning recorded for the current expiry (14, 3 or 1 days); a
    # class default, so an installation never warned keeps the state it had before.
    warned_days: int | None = None
    derived_state = ("recent_reports",)  # event ids of its newest reports (has_applied)

    # --- events -------------------------------------------------------------------------
    class Installed(Aggregate.Created):
        seller_id: UUID
        app_id: UUID
        duration: str
        contact_email: str
        contact_phone: str
        scopes: list[str]
        installed_at: datetime
        via: str

    class Authorized(Aggregate.Event):
        authorized_at: datetime
        expires_at: datetime | None
        # The scopes consented to (None in events stored before consent per scope: all asked).
        scopes: list[str] | None = None

    class ScopesGranted(Aggregate.Event):  # more scopes for a live one (re-authorization)
        scopes: list[str]
        granted_at: datetime
        by: UUID

    class ScopeRevoked(Aggregate.Event):  # one optional scope withdrawn: tokens lose it at once
        scope: str
        revoked_at: datetime
        by: UUID

    class Declined(Aggregate.Event):
        declined_at: datetime
        reason: str

    class Renewed(Aggregate.Event):
        duration: str
        renewed_at: datetime
        expires_at: datetime | None

    class Cancelled(Aggregate.Event):
        cancelled_at: datetime
        reason: str

    class Expired(Aggregate.Event):
        expired_at: datetime

    class ExpiryWarned(Aggregate.Event):
        days_before: int
        expires_at: datetime
        warned_at: datetime

    class IncidentRaised(Aggregate.Event):
        incident_id: UUID
        event_id: str
        area: str
        error_code: str
        message: str
        object_ids: list[str]
        occurred_at: datetime

    class IncidentRecurred(Aggregate.Event):
        incident_id: UUID
        event_id: str
        message: str
        object_ids: list[str]
        occurred_at: datetime

    class IncidentAcknowledged(Aggregate.Event):
        incident_id: UUID
        acknowledged_at: datetime

    class IncidentResolved(Aggregate.Event):
        incident_id: UUID
        resolved_at: datetime
        resolution: str
        event_id: str | None

    @event(Installed)
    def __init__(
        self,
        seller_id: UUID,
        app_id: UUID,
        duration: str,
        contact_email: str,
        contact_phone: str,
        scopes: list[str],
        installed_at: datetime,
        via: str = "store",
    ) -> None:
        self.seller_id = seller_id
        self.app_id = app_id
        self.duration = Duration(duration)
        self.contact_email = contact_email
        self.contact_phone = contact_phone
        self.scopes = list(scopes)
        self.installed_at = installed_at
        self.via = via
        self.status = InstallationStatus.PENDING_AUTHORIZATION
        self.authorized_at: datetime | None = None
        self.expires_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.end_reason: str | None = None
        self.incidents: dict[UUID, Incident] = {}

    # --- queries on state -------------------------------------------------------------
    def is_live(self, now: datetime) -> bool:
        """Active and not past its expiry (the sweeper may not have run yet)."""
        return values.installation_live(self.status, self.expires_at, now)

    def is_pending(self, now: datetime) -> bool:
        """Pending authorization and still inside the authorization window."""
        return (
            self.status is InstallationStatus.PENDING_AUTHORIZATION
            and now <= self.installed_at + AUTHORIZATION_WINDOW
        )

    def effective_status(self, now: datetime) -> InstallationStatus:
        """The status as of `now`, applying an expiry or lapse not yet recorded."""
        if self.status is InstallationStatus.ACTIVE and values.past_expiry(self.expires_at, now):
            return InstallationStatus.EXPIRED
        if self.status is InstallationStatus.PENDING_AUTHORIZATION and not self.is_pending(now):
            return InstallationStatus.DECLINED
        return self.status

    def conditions(self, now: datetime) -> Conditions:
        """The authorization conditions the seller reviews before authorizing."""
        window_ends = self.installed_at + AUTHORIZATION_WINDOW
        return Conditions.of(self.scopes, self.duration, now, authorize_before=window_ends)

    # --- lifecycle commands -------------------------------------------------------------
    def authorize(
        self, now: datetime, scopes: Sequence[str] | None = None, required: Collection[str] = ()
    ) -> None:
        """The seller reviewed the conditions and authorized: the app becomes active with
        `scopes` (default: every scope asked; only those not `required` may be left out)."""
        if self.status is not InstallationStatus.PENDING_AUTHORIZATION:
            raise NotPendingAuthorization(f"installation is {self.status.value}")
        if not self.is_pending(now):
            raise AuthorizationLapsed("the authorization step was left open for over 30 minutes")
        granted = (
            self.scopes if scopes is None else consent.chosen_scopes(self.scopes, scopes, required)
        )
        self._authorized(now, self.duration.expiry_from(now), granted)

    @event(Authorized)
    def _authorized(
        self, authorized_at: datetime, expires_at: datetime | None, scopes: list[str] | None = None
    ) -> None:
        self.status = InstallationStatus.ACTIVE
        self.authorized_at = authorized_at
        self.expires_at = expires_at
        if scopes is not None:
            self.scopes = list(scopes)

    # --- consent per scope ------------------------------------------------------------------
    def grant_scopes(self, scopes: Sequence[str], now: datetime, by: UUID) -> list[str]:
        """The seller consented to more scopes of a live installation; returns the new ones."""
        self._require_live(now)
        new = [s for s in consent.in_scope_order(scopes) if s not in self.scopes]
        if new:
            self._scopes_granted(new, now, by)
        return new

    @event(ScopesGranted)
    def _scopes_granted(self, scopes: list[str], granted_at: datetime, by: UUID) -> None:
        self.scopes = consent.in_scope_order([*self.scopes, *scopes])

    def revoke_scope(self, scope: str, now: datetime, by: UUID, required: Collection[str]) -> None:
        """The seller withdraws one optional scope (of an active or expired installation)."""
        if self.status not in (InstallationStatus.ACTIVE, InstallationStatus.EXPIRED):
            raise InstallationNotActive(f"installation is {self.status.value}")
        consent.check_revocable(scope, self.scopes, required)
        self._scope_revoked(scope, now, by)

    @event(ScopeRevoked)
    def _scope_revoked(self, scope: str, revoked_at: datetime, by: UUID) -> None:
        self.scopes = [s for s in self.scopes if s != scope]

    def decline(self, now: datetime, reason: str = "seller") -> None:
        """The seller declined (or the window lapsed, or a new install superseded it)."""
        if self.status is not InstallationStatus.PENDING_AUTHORIZATION:
            raise NotPendingAuthorization(f"installation is {self.status.value}")
        self._declined(now, reason)

    def lapse(self, now: datetime) -> None:
        """Records that the authorization window passed without an answer."""
        if self.status is not InstallationStatus.PENDING_AUTHORIZATION or self.is_pending(now):
            raise NotPendingAuthorization("installation has not lapsed")
        self._declined(now, "lapsed")

    @event(Declined)
    def _declined(self, declined_at: datetime, reason: str) -> None:
        self.status = InstallationStatus.DECLINED
        self.ended_at = declined_at
        self.end_reason = reason

    def renew(self, duration: Duration, now: datetime) -> None:
        """Extends the authorization from max(now, expires_at); an expired one comes back."""
        if self.status is InstallationStatus.CANCELLED:
            raise AlreadyCancelled("a cancelled installation cannot be renewed; install again")
        if self.status not in (InstallationStatus.ACTIVE, InstallationStatus.EXPIRED):
            raise NotRenewable(f"an installation that is {self.status.value} cannot be renewed")
        if self.status is InstallationStatus.ACTIVE and self.expires_at is None:
            raise NotRenewable("an unlimited installation never expires")
        self._renewed(duration.value, now, duration.renewal_expiry(self.expires_at, now))

    @event(Renewed)
    def _renewed(self, duration: str, renewed_at: datetime, expires_at: datetime | None) -> None:
        self.duration = Duration(duration)
        self.status = InstallationStatus.ACTIVE
        self.expires_at = expires_at
        self.ended_at = None
        self.end_reason = None
        vars(self).pop("warned_days", None)  # a new expiry: every warning is due again

    def cancel(self, now: datetime, reason: str = "seller") -> None:
        """Revokes the app's access at once; final."""
        if self.status is InstallationStatus.CANCELLED:
            raise AlreadyCancelled("installation is already cancelled")
        if self.status not in (InstallationStatus.ACTIVE, InstallationStatus.EXPIRED):
            raise NotCancellable(f"an installation that is {self.status.value} cannot be cancelled")
        self._cancelled(now, reason)

    @event(Cancelled)
    def _cancelled(self, cancelled_at: datetime, reason: str) -> None:
        self.status = InstallationStatus.CANCELLED
        self.ended_at = cancelled_at
        self.end_reason = reason

    def expire(self, now: datetime) -> None:
        """Records that an active installation reached its expiry."""
        if self.status is not InstallationStatus.ACTIVE or not values.past_expiry(
            self.expires_at, now
        ):
            raise NotExpirable("installation is not active past its expiry")
        self._expired(self.expires_at or now)

    @event(Expired)
    def _expired(self, expired_at: datetime) -> None:
        self.status = InstallationStatus.EXPIRED
        self.ended_at = expired_at
        self.end_reason = "expired"

    def warn_expiry(self, now: datetime) -> int:
        """Records the most urgent expiry warning due now (14, 3 or 1 days before expiry);
        each threshold once per expiry, a passed one skipped. Returns its days."""
        due = None
        if self.status is InstallationStatus.ACTIVE:
            due = expiry_warning_due(self.expires_at, now)
        if due is None or (self.warned_days is not None and self.warned_days <= due):
            raise NotDue("no expiry warning is due")
        assert self.expires_at is not None
        self._expiry_warned(due, self.expires_at, now)
        return due

    @event(ExpiryWarned)
    def _expiry_warned(self, days_before: int, expires_at: datetime, warned_at: datetime) -> None:
        self.warned_days = days_before

    # --- incidents -----------------------------------------------------------------------
    def record_sync(self, sync: SyncEvent, now: datetime) -> list[UUID]:
        """Applies a connector's sync report; returns the incidents it raised, grouped or
        resolved. A failure raises an incident or groups into the open one of its area and
        error code; a success resolves the unresolved incidents of its area it supersedes."""
        sync.check()
        self._require_live(now)
        if sync.kind == "failure":
            message, object_ids, at = sync.kept_message, sync.kept_object_ids, sync.occurred_at
            existing = open_incident(self.incidents.values(), sync.area, sync.error_code)
            if existing is not None:
                self._incident_recurred(existing.id, sync.event_id, message, object_ids, at)
                return [existing.id]
            new_id = incident_id_for(self.id, sync.event_id)
            self._incident_raised(
                new_id, sync.event_id, sync.area, sync.error_code, message, object_ids, at
            )
            return [new_id]
        resolved = superseded_by(self.incidents.values(), sync)
        for incident_id in resolved:
            self._incident_resolved(incident_id, sync.occurred_at, "sync_succeeded", sync.event_id)
        return resolved

    def has_applied(self, event_id: str) -> bool:  # among its newest RECENT_REPORTS
        return event_id in vars(self).get("recent_reports", ())

    def acknowledge_incident(self, incident_id: UUID, now: datetime) -> None:
        """The seller has seen the incident; it stays unresolved and keeps grouping."""
        incident = self._incident(incident_id)
        if not incident.is_open:
            raise IncidentNotOpen(f"incident is {incident.status.value}")
        self._incident_acknowledged(incident_id, now)

    def resolve_incident(self, incident_id: UUID, now: datetime) -> None:
        """The seller marks the incident resolved."""
        incident = self._incident(incident_id)
        if not incident.is_unresolved:
            raise IncidentAlreadyResolved("incident is already resolved")
        self._incident_resolved(incident_id, now, "seller", None)

    def _incident(self, incident_id: UUID) -> Incident:
        try:
            return self.incidents[incident_id]
        except KeyError:
            raise IncidentNotFound(f"incident {incident_id} not found") from None

    def _require_live(self, now: datetime) -> None:
        if self.status is InstallationStatus.CANCELLED:
            raise InstallationCancelled("installation is cancelled")
        if not self.is_live(now):
            raise InstallationNotActive(f"installation is {self.effective_status(now).value}")

    @event(IncidentRaised)
    def _incident_raised(
        self,
        incident_id: UUID,
        event_id: str,
        area: str,
        error_code: str,
        message: str,
        object_ids: list[str],
        occurred_at: datetime,
    ) -> None:
        self.incidents[incident_id] = Incident.raised(
            incident_id, area, error_code, message, object_ids, occurred_at
        )
        remember_report(self, event_id)

    @event(IncidentRecurred)
    def _incident_recurred(
        self,
        incident_id: UUID,
        event_id: str,
        message: str,
        object_ids: list[str],
        occurred_at: datetime,
    ) -> None:
        self.incidents[incident_id].recur(message, object_ids, occurred_at)
        remember_report(self, event_id)

    @event(IncidentAcknowledged)
    def _incident_acknowledged(self, incident_id: UUID, acknowledged_at: datetime) -> None:
        self.incidents[incident_id].acknowledge(acknowledged_at)

    @event(IncidentResolved)
    def _incident_resolved(
        self, incident_id: UUID, resolved_at: datetime, resolution: str, event_id: str | None
    ) -> None:
        self.incidents[incident_id].resolve(resolved_at, resolution)
        remember_report(self, event_id)
