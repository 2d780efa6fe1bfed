"""Property: any sequence of lifecycle commands keeps the invariants, and the stored
aggregate agrees with a plain model of the rules written independently of the domain."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from application import installations, sync_events
from application.store import Store
from domain import errors
from domain.clock import FixedClock
from domain.credentials import Passwords
from domain.incident import SyncEvent
from tests import factories as f

DAYS = {"30d": 30, "90d": 90, "180d": 180, "365d": 365, "unlimited": None}
WINDOW = timedelta(minutes=30)


@dataclass
class ModelIncident:
    area: str
    code: str
    count: int = 1
    status: str = "open"


@dataclass
class ModelInstallation:
    seller: UUID
    app: UUID
    installed_at: datetime
    duration: str
    status: str = "pending_authorization"
    expires_at: datetime | None = None
    incidents: dict[UUID, ModelIncident] = field(default_factory=dict)

    def live(self, now: datetime) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)

    def pending(self, now: datetime) -> bool:
        return self.status == "pending_authorization" and now <= self.installed_at + WINDOW


class Lifecycle(RuleBasedStateMachine):
    installations = Bundle("installations")

    @initialize()
    def setup(self) -> None:
        self.clock = FixedClock()
        self.store = Store(
            {"PERSISTENCE_MODULE": "eventsourcing.popo"},
            clock=self.clock,
            passwords=Passwords.fast(),
        )
        self.sellers = [f.seller(self.store) for _ in range(2)]
        self.apps = [f.app(self.store) for _ in range(2)]
        self.model: dict[UUID, ModelInstallation] = {}
        self.slot: dict[tuple[UUID, UUID], UUID] = {}
        self.events = 0

    def now(self) -> datetime:
        return self.clock.now()

    def expect(self, error: type[Exception] | None, command, *args):  # type: ignore[no-untyped-def]
        if error is None:
            return command(*args)
        with pytest.raises(error):
            command(*args)
        return None

    @rule(
        target=installations,
        seller=st.integers(0, 1),
        app=st.integers(0, 1),
        duration=st.sampled_from(list(DAYS)),
    )
    def install(self, seller: int, app: int, duration: str):  # type: ignore[no-untyped-def]
        s, a = self.sellers[seller], self.apps[app]
        current = self.model.get(self.slot.get((s, a)))  # type: ignore[arg-type]
        if current is not None and current.live(self.now()):
            self.expect(
                errors.DuplicateInstallation,
                functools.partial(installations.install, self.store),
                s,
                a,
                duration,
                "me@shop.example.com",
                "+14155550101",
            )
            return multiple()
        if current is not None and current.pending(self.now()):
            current.status = "declined"
        outcome = installations.install(
            self.store, s, a, duration, "me@shop.example.com", "+14155550101"
        )
        self.model[outcome.id] = ModelInstallation(s, a, self.now(), duration)
        self.slot[(s, a)] = outcome.id
        return outcome.id

    @rule(i=installations)
    def authorize(self, i: UUID) -> None:
        m = self.model[i]
        if m.status != "pending_authorization":
            self.expect(
                errors.NotPendingAuthorization,
                functools.partial(installations.authorize, self.store),
                m.seller,
                i,
            )
        elif not m.pending(self.now()):
            self.expect(
                errors.AuthorizationLapsed,
                functools.partial(installations.authorize, self.store),
                m.seller,
                i,
            )
        else:
            installations.authorize(self.store, m.seller, i)
            m.status = "active"
            days = DAYS[m.duration]
            m.expires_at = None if days is None else self.now() + timedelta(days=days)

    @rule(i=installations)
    def decline(self, i: UUID) -> None:
        m = self.model[i]
        if m.status != "pending_authorization":
            self.expect(
                errors.NotPendingAuthorization,
                functools.partial(installations.decline, self.store),
                m.seller,
                i,
            )
        else:
            installations.decline(self.store, m.seller, i)
            m.status = "declined"

    @rule(i=installations, duration=st.sampled_from(list(DAYS)))
    def renew(self, i: UUID, duration: str) -> None:
        m, now = self.model[i], self.now()
        effectively_expired = m.status == "expired" or (
            m.status == "active" and m.expires_at is not None and m.expires_at <= now
        )
        if m.status == "cancelled":
            error: type[Exception] | None = errors.AlreadyCancelled
        elif m.status not in ("active", "expired"):
            error = errors.NotRenewable
        elif effectively_expired and self.slot[(m.seller, m.app)] != i:
            error = errors.NotRenewable
        elif m.status == "active" and m.expires_at is None:
            error = errors.NotRenewable
        else:
            error = None
        self.expect(
            error, functools.partial(installations.renew, self.store), m.seller, i, duration
        )
        if error is None:
            start = max(now, m.expires_at) if m.expires_at else now
            days = DAYS[duration]
            m.status = "active"
            m.expires_at = None if days is None else start + timedelta(days=days)

    @rule(i=installations)
    def cancel(self, i: UUID) -> None:
        m = self.model[i]
        if m.status == "cancelled":
            error: type[Exception] | None = errors.AlreadyCancelled
        elif m.status not in ("active", "expired"):
            error = errors.NotCancellable
        else:
            error = None
        self.expect(error, functools.partial(installations.cancel, self.store), m.seller, i)
        if error is None:
            m.status = "cancelled"

    @rule(i=installations)
    def expire(self, i: UUID) -> None:
        m = self.model[i]
        due = m.status == "active" and m.expires_at is not None and m.expires_at <= self.now()
        self.expect(
            None if due else errors.NotExpirable,
            functools.partial(installations.expire, self.store),
            i,
        )
        if due:
            m.status = "expired"

    @rule(delta=st.sampled_from([timedelta(minutes=10), timedelta(days=20), timedelta(days=100)]))
    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    def _sync_error(self, m: ModelInstallation) -> type[Exception] | None:
        if m.status == "cancelled":
            return errors.InstallationCancelled
        if not m.live(self.now()):
            return errors.InstallationNotActive
        return None

    @rule(
        i=installations,
        area=st.sampled_from(["orders", "fulfillment"]),
        code=st.sampled_from(["A", "B"]),
    )
    def fail_sync(self, i: UUID, area: str, code: str) -> None:
        m = self.model[i]
        self.events += 1
        event = SyncEvent(f"ev{self.events}", i, "failure", area, self.now(), code, "boom", ["o1"])
        error = self._sync_error(m)
        result = self.expect(
            error, functools.partial(sync_events.record_sync_event, self.store), event
        )
        if error is None:
            (incident_id,) = result.incident_ids
            open_one = [
                k
                for k, inc in m.incidents.items()
                if inc.status != "resolved" and (inc.area, inc.code) == (area, code)
            ]
            if open_one:
                assert open_one == [incident_id]
                m.incidents[incident_id].count += 1
            else:
                assert incident_id not in m.incidents
                m.incidents[incident_id] = ModelIncident(area, code)

    @rule(i=installations, area=st.sampled_from(["orders", "fulfillment"]))
    def succeed_sync(self, i: UUID, area: str) -> None:
        m = self.model[i]
        self.events += 1
        event = SyncEvent(f"ev{self.events}", i, "success", area, self.now())
        error = self._sync_error(m)
        result = self.expect(
            error, functools.partial(sync_events.record_sync_event, self.store), event
        )
        if error is None:
            expected = {
                k for k, inc in m.incidents.items() if inc.status != "resolved" and inc.area == area
            }
            assert set(result.incident_ids) == expected
            for k in expected:
                m.incidents[k].status = "resolved"

    @rule(i=installations, pick=st.integers(0, 3))
    def acknowledge(self, i: UUID, pick: int) -> None:
        m = self.model[i]
        if not m.incidents:
            return
        k = list(m.incidents)[pick % len(m.incidents)]
        ok = m.incidents[k].status == "open"
        self.expect(
            None if ok else errors.IncidentNotOpen,
            functools.partial(installations.acknowledge_incident, self.store),
            m.seller,
            i,
            k,
        )
        if ok:
            m.incidents[k].status = "acknowledged"

    @rule(i=installations, pick=st.integers(0, 3))
    def resolve(self, i: UUID, pick: int) -> None:
        m = self.model[i]
        if not m.incidents:
            return
        k = list(m.incidents)[pick % len(m.incidents)]
        ok = m.incidents[k].status != "resolved"
        error = None if ok else errors.IncidentAlreadyResolved
        self.expect(
            error, functools.partial(installations.resolve_incident, self.store), m.seller, i, k
        )
        if ok:
            m.incidents[k].status = "resolved"

    @rule(i=consumes(installations))
    def forget(self, i: UUID) -> None:
        """Lets hypothesis drop an installation from later steps (it stays in the model)."""

    @invariant()
    def at_most_one_live_installation_per_seller_and_app(self) -> None:
        if not hasattr(self, "model"):
            return
        live = [(m.seller, m.app) for m in self.model.values() if m.live(self.now())]
        assert len(live) == len(set(live))

    @invariant()
    def stored_history_agrees_with_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        for i, m in self.model.items():
            aggregate = installations.installation(
                self.store, i
            )  # reconstituted from stored events
            assert aggregate.status.value == m.status, (i, aggregate.status, m.status)
            assert aggregate.expires_at == m.expires_at
            assert {k: (inc.status.value, inc.count) for k, inc in aggregate.incidents.items()} == {
                k: (inc.status, inc.count) for k, inc in m.incidents.items()
            }


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
