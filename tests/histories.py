"""Rich event histories for the read-model tests (replay equals live, projector crashes).

A `World` applies generated commands to a store. Each command aims at a target it applies
to (authorize a pending installation, acknowledge an open incident, expire an active one
whose time came), so most succeed and the log holds every event the read models read:
accounts, listings listed / changed (slug and name too) / delisted, installs,
authorizations, declines, lapses, renewals, cancels, expiries, and incidents raised,
recurring, acknowledged and resolved, and reviews (tests/review_history.py). One command
in eight picks any target instead, so refusals (which must append nothing) stay in the mix.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from uuid import UUID

from application import installations, listings, sync_events
from application.expiry import DueInstallations, sweep
from application.store import Store
from domain.clock import FixedClock
from domain.errors import DomainError
from domain.incident import Incident, SyncEvent
from domain.installation import AUTHORIZATION_WINDOW, Installation
from domain.values import IncidentStatus, InstallationStatus
from tests import factories as f
from tests.review_history import REVIEW_EVENTS, REVIEW_WEIGHTS, ReviewCommands

# How often each command is drawn (an op appears this many times in OPS).
WEIGHTS = {
    "seller": 1,
    "developer": 1,
    "app": 2,
    "update": 2,
    "rename": 2,
    "delist": 2,
    "install": 6,
    "authorize": 5,
    "decline": 1,
    "lapse": 1,
    "renew": 3,
    "cancel": 2,
    "expire": 2,
    "time": 2,
    "sweep": 1,
    "failure": 7,
    "success": 3,
    "acknowledge": 3,
    "resolve": 3,
    "revoke": 2,
    "grant": 2,
    **REVIEW_WEIGHTS,
}
OPS: tuple[str, ...] = tuple(op for op, weight in WEIGHTS.items() for _ in range(weight))
CATEGORIES = ["connectors", "analytics", "marketing", "shipping-fulfillment"]
PLATFORMS = ["etsy", "ebay", "shopify", "amazon"]
DURATIONS = ["30d", "90d", "365d", "unlimited", "30d"]
AREAS = ["orders", "inventory"]
FINAL = (InstallationStatus.CANCELLED, InstallationStatus.DECLINED)
STEPS = [timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=2), timedelta(days=3)]

# The events a read model reads, as `Aggregate.Event` (the last part of the topic).
COUNTED = (
    "Account.Registered",
    "AppListing.Listed",
    "AppListing.Updated",
    "AppListing.Delisted",
    "Installation.Installed",
    "Installation.Authorized",
    "Installation.Declined",
    "Installation.Declined(lapsed)",
    "Installation.Renewed",
    "Installation.Cancelled",
    "Installation.Expired",
    "Installation.ExpiryWarned",
    "Installation.IncidentRaised",
    "Installation.IncidentRecurred",
    "Installation.IncidentAcknowledged",
    "Installation.IncidentResolved",
    "Installation.ScopeRevoked",
    "Installation.ScopesGranted",
    *REVIEW_EVENTS,
)
# What the generated apps ask for: one required scope, two the seller may leave out.
REQUIRED, OPTIONAL = ["fulfillment.write"], ["orders.read", "inventory.read"]


class World(ReviewCommands):
    """Applies generated commands to a store, remembering ids to refer to later.

    `due` gives the sweep its read model (a caught-up projector's DueInstallations); without
    it the sweep expires and lapses what the aggregates say is due.
    """

    def __init__(
        self,
        store: Store,
        clock: FixedClock,
        due: Callable[[], DueInstallations] | None = None,
    ) -> None:
        self.store, self.clock, self.due = store, clock, due
        self.developers: list[UUID] = [f.developer(store)]
        self.sellers: list[UUID] = [f.seller(store), f.seller(store, "cross_border")]
        self.apps: list[UUID] = [
            f.app(store, self.developers[0], scopes=REQUIRED, optional_scopes=OPTIONAL)
            for _ in range(2)
        ]
        self.installations: list[UUID] = []
        self.reports = 0
        self._final: dict[UUID, Installation] = {}
        self.accepted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def apply(self, op: str, n: int) -> bool:
        """Runs one command; False when the domain refused it (nothing was appended)."""
        try:
            getattr(self, f"_{op}")(n)
        except DomainError:
            self.refused[op] += 1
            return False
        self.accepted[op] += 1
        return True

    def run(self, commands: Sequence[tuple[str, int]]) -> None:
        for op, n in commands:
            self.apply(op, n)

    # --- targets --------------------------------------------------------------------------
    # A command aims at a target it applies to, and makes one first when there is none (an
    # install to authorize, an authorization to cancel, a failure to acknowledge). One time
    # in eight (n % 8 == 0) it takes any installation instead, most likely to be refused.
    def _load(self, installation_id: UUID) -> Installation:
        found = self._final.get(installation_id) or self.store.load(installation_id, Installation)
        assert found is not None
        if found.status in FINAL:  # never changes again: no need to load it again
            self._final[installation_id] = found
        return found

    def _target(
        self, n: int, test: Callable[[Installation], bool], make: Callable[[int], Installation]
    ) -> Installation:
        every = [self._load(i) for i in self.installations]
        fitting = every if n % 8 == 0 else [i for i in every if test(i)]
        return fitting[(n // 8) % len(fitting)] if fitting else make(n)

    def _pending(self, i: Installation) -> bool:
        return i.is_pending(self.clock.now())

    def _live(self, i: Installation) -> bool:
        return i.is_live(self.clock.now())

    def _new_pending(self, n: int) -> Installation:
        """Installs an app for a seller who has no live installation of it."""
        now = self.clock.now()
        taken = {
            (i.seller_id, i.app_id) for i in map(self._load, self.installations) if i.is_live(now)
        }
        listed = [a for a in self.apps if listings.app(self.store, a).is_listed]
        if not listed:
            self._app(n)
            listed = [self.apps[-1]]
        free = [(s, a) for s in self.sellers for a in listed if (s, a) not in taken]
        if not free:
            self._seller(n)
            free = [(self.sellers[-1], listed[0])]
        seller, app_id = free[n % len(free)]
        outcome = installations.install(
            self.store,
            seller,
            app_id,
            DURATIONS[n % len(DURATIONS)],
            "ops@shop.example.com",
            "+14155550123",
        )
        self.installations.append(outcome.id)
        return self._load(outcome.id)

    def _new_live(self, n: int) -> Installation:
        pending = [i for i in map(self._load, self.installations) if self._pending(i)]
        target = pending[n % len(pending)] if pending else self._new_pending(n)
        installations.authorize(self.store, target.seller_id, target.id)
        return self._load(target.id)

    def _new_expiring(self, n: int) -> Installation:
        """A live installation with an expiry (authorized for 30 days if need be)."""
        live = [i for i in map(self._load, self.installations) if self._live(i) and i.expires_at]
        if live:
            return live[n % len(live)]
        pending = self._new_pending(n)
        if pending.duration.days is None:  # unlimited: renewing needs an expiry, so start anew
            installations.decline(self.store, pending.seller_id, pending.id)
            pending = self._new_pending(n + 1 if n % len(DURATIONS) != 3 else n + 2)
        installations.authorize(self.store, pending.seller_id, pending.id)
        return self._load(pending.id)

    def _new_incident(self, n: int) -> tuple[Installation, UUID]:
        """A new open incident (its error code is new: it cannot group into another)."""
        live = self._target(n | 1, self._live, self._new_live)
        self._report(live, n, "failure", AREAS[n % 2], f"N{self.reports}")
        found = self._load(live.id)
        return found, list(found.incidents)[-1]

    # --- accounts and listings ------------------------------------------------------------
    def _seller(self, n: int) -> None:
        self.sellers.append(f.seller(self.store, ["local", "cross_border"][n % 2]))

    def _developer(self, n: int) -> None:
        self.developers.append(f.developer(self.store))

    def _app(self, n: int) -> None:
        developer = self.developers[n % len(self.developers)]
        self.apps.append(
            f.app(
                self.store,
                developer,
                categories=[CATEGORIES[n % 4], CATEGORIES[(n // 4) % 4]],
                platforms=PLATFORMS[: n % 5],
                scopes=REQUIRED,
                optional_scopes=OPTIONAL,
            )
        )

    def _owner(self, app_id: UUID) -> UUID:
        return listings.app(self.store, app_id).developer_id

    def _update(self, n: int) -> None:
        app_id = self.apps[n % len(self.apps)]
        changes = {"tagline": f"Syncs {n} things", "categories": [CATEGORIES[n % 4]]}
        listings.update_app(self.store, self._owner(app_id), app_id, changes)

    def _rename(self, n: int) -> None:
        """A new name, and every other time a new slug (a slug already taken is refused)."""
        app_id = self.apps[n % len(self.apps)]
        changes = {"name": f"Renamed {n % 97}"}
        if n % 2:
            changes["slug"] = f"renamed-{n % 97}"
        listings.update_app(self.store, self._owner(app_id), app_id, changes)

    def _delist(self, n: int) -> None:
        app_id = self.apps[n % len(self.apps)]
        listings.delist_app(self.store, self._owner(app_id), app_id)

    # --- the installation lifecycle -------------------------------------------------------
    def _install(self, n: int) -> None:
        if n % 8:
            self._new_pending(n)
            return
        # Any seller and app: may be a duplicate of a live one, or a delisted app.
        outcome = installations.install(
            self.store,
            self.sellers[n % len(self.sellers)],
            self.apps[(n // 8) % len(self.apps)],
            DURATIONS[n % len(DURATIONS)],
            "ops@shop.example.com",
            "+14155550123",
        )
        self.installations.append(outcome.id)

    def _authorize(self, n: int) -> None:
        target = self._target(n, self._pending, self._new_pending)
        installations.authorize(self.store, target.seller_id, target.id)

    def _decline(self, n: int) -> None:
        target = self._target(n, self._pending, self._new_pending)
        installations.decline(self.store, target.seller_id, target.id)

    def _cancel(self, n: int) -> None:
        ended = (InstallationStatus.ACTIVE, InstallationStatus.EXPIRED)
        target = self._target(n, lambda i: i.status in ended, self._new_live)
        installations.cancel(self.store, target.seller_id, target.id)

    def _renew(self, n: int) -> None:
        def renewable(i: Installation) -> bool:
            if i.status is InstallationStatus.ACTIVE:
                return i.expires_at is not None
            return i.status is InstallationStatus.EXPIRED and self._holds_slot(i)

        target = self._target(n, renewable, self._new_expiring)
        installations.renew(self.store, target.seller_id, target.id, DURATIONS[n % 4])

    def _holds_slot(self, expired: Installation) -> bool:
        """No newer installation of the same seller and app (renewal would be refused)."""
        return not any(
            i.seller_id == expired.seller_id
            and i.app_id == expired.app_id
            and i.installed_at > expired.installed_at
            for i in map(self._load, self.installations)
        )

    def _expire(self, n: int) -> None:
        """Moves time to an active installation's expiry, then records it (or sweeps)."""
        target = self._target(
            n,
            lambda i: i.status is InstallationStatus.ACTIVE and i.expires_at is not None,
            self._new_expiring,
        )
        if target.expires_at is not None and target.expires_at > self.clock.now():
            self.clock.set(target.expires_at + timedelta(seconds=1))
        if n % 3 == 0:
            self._sweep(n)
        else:
            installations.expire(self.store, target.id)

    def _lapse(self, n: int) -> None:
        """Lets a pending installation's authorization window pass, then records it."""
        target = self._target(n, self._pending, self._new_pending)
        lapses_at = target.installed_at + AUTHORIZATION_WINDOW + timedelta(seconds=1)
        if lapses_at > self.clock.now():
            self.clock.set(lapses_at)
        if n % 3 == 0:
            self._sweep(n)
        else:
            installations.lapse(self.store, target.id)

    def _time(self, n: int) -> None:
        self.clock.advance(STEPS[n % len(STEPS)])

    def _sweep(self, n: int) -> None:
        if self.due is not None:
            sweep(self.store, self.due())
            return
        now = self.clock.now()
        for i in map(self._load, self.installations):
            if i.status is InstallationStatus.ACTIVE and not i.is_live(now):
                installations.expire(self.store, i.id)
            elif i.status is InstallationStatus.PENDING_AUTHORIZATION and not self._pending(i):
                installations.lapse(self.store, i.id)

    # --- consent, scope by scope ------------------------------------------------------------
    def _revoke(self, n: int) -> None:
        """The seller takes back an optional scope of a live installation that has one."""
        target = self._target(
            n,
            lambda i: self._live(i) and any(s in OPTIONAL for s in i.scopes),
            self._new_live,
        )
        granted = [s for s in target.scopes if s in OPTIONAL] or OPTIONAL
        installations.revoke_scope(
            self.store, target.seller_id, target.id, granted[n % len(granted)]
        )

    def _grant(self, n: int) -> None:
        """The seller grants again an optional scope a live installation lacks."""

        def lacking(i: Installation) -> list[str]:
            return [s for s in OPTIONAL if s not in i.scopes]

        target = self._target(n, lambda i: self._live(i) and bool(lacking(i)), self._new_live)
        missing = lacking(target) or OPTIONAL
        installations.grant_scopes(
            self.store, target.seller_id, target.id, [missing[n % len(missing)]]
        )

    # --- incidents ------------------------------------------------------------------------
    def _report(self, target: Installation, n: int, kind: str, area: str, code: str = "") -> None:
        self.reports += 1
        sync_events.record_sync_event(
            self.store,
            SyncEvent(
                event_id=f"ev-{self.reports}",
                installation_id=target.id,
                kind=kind,
                area=area,
                occurred_at=self.clock.now(),
                error_code=code,
                message=f"sync failed ({n})",
                object_ids=[f"o-{n % 13}", f"o-{n % 7}"],
            ),
        )

    def _unresolved(self) -> list[tuple[Installation, Incident]]:
        return [
            (i, incident)
            for i in map(self._load, self.installations)
            if self._live(i)
            for incident in i.incidents.values()
            if incident.is_unresolved
        ]

    def _failure(self, n: int) -> None:
        """A new failure, or one time in three the same failure again (it recurs)."""
        unresolved = self._unresolved() if n % 3 == 1 else []
        if unresolved:
            target, incident = unresolved[n % len(unresolved)]
            self._report(target, n, "failure", incident.area, incident.error_code)
            return
        target = self._target(n, self._live, self._new_live)
        self._report(target, n, "failure", AREAS[n % 2], "E1" if n % 5 == 0 else "E0")

    def _success(self, n: int) -> None:
        """A success in an area with an unresolved incident (it resolves it)."""
        unresolved = self._unresolved()
        if unresolved and n % 8:
            target, incident = unresolved[n % len(unresolved)]
            self._report(target, n, "success", incident.area)
            return
        target = self._target(n, self._live, lambda m: self._new_incident(m)[0])
        self._report(target, n, "success", AREAS[n % 2])

    def _incident_command(self, n: int, statuses: set[IncidentStatus], act: str) -> None:
        candidates = [
            (i, incident.id)
            for i in map(self._load, self.installations)
            for incident in i.incidents.values()
            if n % 8 == 0 or incident.status in statuses
        ]
        if candidates:
            i, incident_id = candidates[(n // 8) % len(candidates)]
        else:
            i, incident_id = self._new_incident(n)
        getattr(installations, act)(self.store, i.seller_id, i.id, incident_id)

    def _acknowledge(self, n: int) -> None:
        self._incident_command(n, {IncidentStatus.OPEN}, "acknowledge_incident")

    def _resolve(self, n: int) -> None:
        unresolved = {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED}
        self._incident_command(n, unresolved, "resolve_incident")


def event_counts(store: Store) -> Counter[str]:
    """How many events of each COUNTED class the log holds (lapses apart from declines)."""
    counts: Counter[str] = Counter()
    start = 1
    while True:
        page = store.notifications(start, 1000)
        for notification in page:
            name = notification.topic.rsplit(":", 1)[-1]
            if name == "Installation.Declined" and store.decode(notification).reason == "lapsed":
                name = "Installation.Declined(lapsed)"
            if name in COUNTED:
                counts[name] += 1
        if len(page) < 1000:
            return counts
        start = page[-1].id + 1


def bucket(count: int) -> str:
    """A count as a coarse range, for hypothesis.event statistics."""
    for top, label in ((0, "0"), (2, "1-2"), (9, "3-9"), (29, "10-29")):
        if count <= top:
            return label
    return "30+"


def random_history(seed: int, length: int) -> list[tuple[str, int]]:
    """A reproducible command list (for tests that want one rich history, not many)."""
    rng = random.Random(seed)
    return [(rng.choice(OPS), rng.randrange(1 << 16)) for _ in range(length)]
