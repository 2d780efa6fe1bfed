"""The install flow and an installation's life: install, authorize, decline, renew, cancel,
expire, lapse; consent per scope (grant more, revoke one); the seller's incident commands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from application.accounts import require_role
from application.listings import app as load_app
from application.store import Outcome, Store
from domain import consent
from domain import values as v
from domain.app_listing import AppListing
from domain.claims import InstallationSlot, installation_slot_id
from domain.errors import (
    AppDelisted,
    AppNotFound,
    DuplicateInstallation,
    InstallationNotFound,
    InvalidDuration,
    NotRenewable,
)
from domain.installation import Installation


def installation(store: Store, installation_id: UUID) -> Installation:
    """The installation with this id, or InstallationNotFound."""
    found = store.load(installation_id, Installation)
    if found is None:
        raise InstallationNotFound(f"installation {installation_id} not found")
    return found


def own_installation(store: Store, seller_id: UUID, installation_id: UUID) -> Installation:
    """The seller's installation; another seller's is reported as not found."""
    found = installation(store, installation_id)
    if found.seller_id != seller_id:
        raise InstallationNotFound(f"installation {installation_id} not found")
    return found


def live_installation(store: Store, seller_id: UUID, app_id: UUID) -> Installation | None:
    """The seller's active, unexpired installation of this app, if any."""
    slot = store.load(installation_slot_id(seller_id, app_id), InstallationSlot)
    if slot is None or slot.installation_id is None:
        return None
    current = store.load(slot.installation_id, Installation)
    return current if current is not None and current.is_live(store.clock.now()) else None


def install(
    store: Store,
    seller_id: UUID,
    app_id: UUID,
    duration: str,
    contact_email: str,
    contact_phone: str,
    *,
    scopes: Sequence[str] | None = None,
    asked: Sequence[str] | None = None,
    via: str = "store",
) -> Outcome:
    """Starts an installation, pending the seller's authorization.

    `asked` is what the app asks for (default: every required and optional scope of the
    listing; an authorization link may ask for fewer); `scopes` is the seller's choice among
    them (default: all of them), which must keep every required one.
    A pending installation of the same app is superseded; an active one → 409.
    """
    parsed = v.Duration.parse(duration)
    email = v.email_address(contact_email, "contact_email")
    phone = v.phone_number(contact_phone, "contact_phone")
    require_role(store, seller_id, v.Role.SELLER)

    def attempt() -> Outcome:
        # The listing and the seller's slot for it, read together (one round trip; none
        # when the listing is kept and the slot new: the append confirms both).
        listing, slot = store.load_pair(
            app_id,
            AppListing,
            installation_slot_id(seller_id, app_id),
            InstallationSlot,
            second_new=True,
        )
        granted = _granted(app_id, listing, parsed, asked, scopes)
        now = store.clock.now()
        if slot is None:
            slot = InstallationSlot(seller_id=seller_id, app_id=app_id)
        superseded = None
        if slot.installation_id is not None:
            current = installation(store, slot.installation_id)
            if current.is_live(now):
                raise DuplicateInstallation(f"app is already installed (installation {current.id})")
            if current.is_pending(now):
                current.decline(now, "superseded")
                superseded = current
        new = Installation(
            seller_id=seller_id,
            app_id=app_id,
            duration=parsed.value,
            contact_email=email,
            contact_phone=phone,
            scopes=granted,
            installed_at=now,
            via=via,
        )
        slot.claim(new.id)
        return Outcome(new.id, store.save(slot, superseded, new))

    return store.retrying(attempt)


def _granted(
    app_id: UUID,
    listing: AppListing | None,
    duration: v.Duration,
    asked: Sequence[str] | None,
    scopes: Sequence[str] | None,
) -> list[str]:
    """The scopes an install of this listing grants (see `install`), or why it cannot."""
    if listing is None:
        raise AppNotFound(f"app {app_id} not found")
    if not listing.is_listed:
        raise AppDelisted(f"app {app_id} is no longer listed")
    if duration.value not in listing.durations:
        raise InvalidDuration("duration", f"this app offers {', '.join(listing.durations)}")
    offered = listing.asked_scopes
    asking = (
        consent.in_scope_order(offered)
        if asked is None
        else consent.chosen_scopes(offered, asked, (), "scope")
    )
    if scopes is None:
        return asking
    return consent.chosen_scopes(asking, v.scopes(list(scopes)), listing.scopes)


def _act(
    store: Store,
    seller_id: UUID | None,
    installation_id: UUID,
    act: Callable[[Installation, datetime], None],
) -> Outcome:
    """Loads the installation (the seller's own, if given), acts, appends; retried on races."""

    def attempt() -> Outcome:
        found = (
            installation(store, installation_id)
            if seller_id is None
            else own_installation(store, seller_id, installation_id)
        )
        act(found, store.clock.now())
        return Outcome(found.id, store.save(found))

    return store.retrying(attempt)


def authorize(
    store: Store, seller_id: UUID, installation_id: UUID, scopes: Sequence[str] | None = None
) -> Outcome:
    """The seller authorizes after reviewing the conditions: the app becomes active.

    With `scopes`, the seller keeps only these of the scopes asked (every required one).
    """

    def attempt() -> Outcome:
        found = own_installation(store, seller_id, installation_id)
        required = load_app(store, found.app_id).scopes if scopes is not None else ()
        found.authorize(store.clock.now(), scopes, required)
        return Outcome(found.id, store.save(found))

    return store.retrying(attempt)


def decline(store: Store, seller_id: UUID, installation_id: UUID) -> Outcome:
    """The seller declines the authorization."""
    return _act(store, seller_id, installation_id, lambda i, now: i.decline(now))


def cancel(store: Store, seller_id: UUID, installation_id: UUID) -> Outcome:
    """Cancels: the app loses access at once. Final."""
    return _act(store, seller_id, installation_id, lambda i, now: i.cancel(now))


def grant_scopes(
    store: Store, seller_id: UUID, installation_id: UUID, scopes: Sequence[str]
) -> Outcome:
    """The seller consents to more scopes the app asks for (re-authorization)."""

    def attempt() -> Outcome:
        found = own_installation(store, seller_id, installation_id)
        if scopes:
            consent.chosen_scopes(load_app(store, found.app_id).asked_scopes, scopes, ())
        found.grant_scopes(scopes, store.clock.now(), seller_id)
        return Outcome(found.id, store.save(found))

    return store.retrying(attempt)


def revoke_scope(store: Store, seller_id: UUID, installation_id: UUID, scope: str) -> Outcome:
    """The seller withdraws one optional scope: every token of the app loses it at once."""
    (known,) = v.scopes([scope], "scope")

    def attempt() -> Outcome:
        found = own_installation(store, seller_id, installation_id)
        required = load_app(store, found.app_id).scopes
        found.revoke_scope(known, store.clock.now(), seller_id, required)
        return Outcome(found.id, store.save(found))

    return store.retrying(attempt)


def renew(store: Store, seller_id: UUID, installation_id: UUID, duration: str) -> Outcome:
    """Extends the authorization from max(now, expires_at); brings back an expired one."""
    parsed = v.Duration.parse(duration)

    def attempt() -> Outcome:
        found = own_installation(store, seller_id, installation_id)
        listing = load_app(store, found.app_id)
        if parsed.value not in listing.durations:
            raise InvalidDuration("duration", f"this app offers {', '.join(listing.durations)}")
        now = store.clock.now()
        slot = None
        if found.effective_status(now) is v.InstallationStatus.EXPIRED:
            # Coming back from expiry: only if no newer installation took the slot.
            slot = store.load(installation_slot_id(found.seller_id, found.app_id), InstallationSlot)
            if slot is None or slot.installation_id != found.id:
                raise NotRenewable("a newer installation of this app replaced this one")
            if found.status is v.InstallationStatus.ACTIVE:
                found.expire(now)
            slot.claim(found.id)
        found.renew(parsed, now)
        return Outcome(found.id, store.save(slot, found))

    return store.retrying(attempt)


def expire(store: Store, installation_id: UUID) -> Outcome:
    """Records the expiry of an installation past its expires_at (the sweeper's command)."""
    return _act(store, None, installation_id, lambda i, now: i.expire(now))


def warn_expiry(store: Store, installation_id: UUID) -> Outcome:
    """Records the expiry warning now due (14, 3 or 1 days before); NotDue if none is."""

    def warn(found: Installation, now: datetime) -> None:
        found.warn_expiry(now)

    return _act(store, None, installation_id, warn)


def lapse(store: Store, installation_id: UUID) -> Outcome:
    """Records that a pending installation's authorization window passed."""
    return _act(store, None, installation_id, lambda i, now: i.lapse(now))


def acknowledge_incident(
    store: Store, seller_id: UUID, installation_id: UUID, incident_id: UUID
) -> Outcome:
    """The seller has seen an incident of their installation."""
    return _act(
        store, seller_id, installation_id, lambda i, now: i.acknowledge_incident(incident_id, now)
    )


def resolve_incident(
    store: Store, seller_id: UUID, installation_id: UUID, incident_id: UUID
) -> Outcome:
    """The seller marks an incident of their installation resolved."""
    return _act(
        store, seller_id, installation_id, lambda i, now: i.resolve_incident(incident_id, now)
    )
