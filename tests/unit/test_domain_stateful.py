"""Property: any sequence of lifecycle commands keeps the invariants, and the stored
aggregate agrees with a plain model of the rules written independently of the domain.

Each step draws a command (weighted) and aims it at a target the model says it applies to
(a pending installation to authorize, an open incident to acknowledge, an active one whose
expiry came, with time moved to it), making one first when there is none, so every
command succeeds often; one step in eight aims it at any installation instead, so
refusals are checked too. Whether a command must succeed, or fail with which error, is
always decided by the model, never by how the target was picked.

`--hypothesis-show-statistics` shows, per command, in how many runs it succeeded or was
refused and how often per run. The machine runs on the in-memory store and on SQLite."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from application import installations, sync_events
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain import errors
from domain.clock import FixedClock
from domain.credentials import Passwords
from domain.incident import SyncEvent
from tests import factories as f
from tests.databases import sqlite_database
from tests.histories import bucket

DAYS = {"30d": 30, "90d": 90, "180d": 180, "365d": 365, "unlimited": None}
WINDOW = timedelta(minutes=30)
AREAS = ["orders", "fulfillment"]
CODES = ["A", "B"]
COMMANDS = (
    "install",
    "authorize",
    "decline",
    "lapse",
    "renew",
    "cancel",
    "expire",
    "fail_sync",
    "succeed_sync",
    "acknowledge",
    "resolve",
)
# How often each command is drawn.
WEIGHTED = (
    *("install",) * 2,
    *("advance",) * 2,
    *("authorize",) * 3,
    "decline",
    *("lapse",) * 2,
    *("renew",) * 2,
    *("cancel",) * 2,
    *("expire",) * 2,
    *("fail_sync",) * 3,
    *("succeed_sync",) * 2,
    *("acknowledge",) * 3,
    *("resolve",) * 2,
)
TIMED = ["30d", "90d", "180d", "365d"]
STEPS = [timedelta(minutes=10), timedelta(days=20), timedelta(days=100)]
PICK = st.integers(0, 1 << 16)


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

    def unresolved(self) -> list[UUID]:
        return [k for k, inc in self.incidents.items() if inc.status != "resolved"]


def _pick(items: list[Any], pick: int) -> Any:
    return items[pick % len(items)]


class Lifecycle(RuleBasedStateMachine):
    def make_store(self, clock: FixedClock) -> Store:
        """The store under test: in memory here, an SQLite file in SQLiteLifecycle."""
        return Store(
            {"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock, passwords=Passwords.fast()
        )

    @initialize()
    def setup(self) -> None:
        self.resources = ExitStack()
        self.clock = FixedClock()
        self.store = self.make_store(self.clock)
        self.sellers = [f.seller(self.store) for _ in range(2)]
        self.apps = [f.app(self.store) for _ in range(2)]
        self.model: dict[UUID, ModelInstallation] = {}
        self.slot: dict[tuple[UUID, UUID], UUID] = {}
        self.events = 0
        self.outcomes: Counter[str] = Counter()

    def teardown(self) -> None:
        if not hasattr(self, "model"):
            return
        for command in COMMANDS:
            event(f"{command} ok per run: {bucket(self.outcomes[f'{command} ok'])}")
        refused = sum(n for k, n in self.outcomes.items() if " refused " in k)
        event(f"refusals per run: {bucket(refused)}")
        self.store.close()
        self.resources.close()

    def now(self) -> datetime:
        return self.clock.now()

    def expect(self, name: str, error: type[Exception] | None, command, *args):  # type: ignore[no-untyped-def]
        """Runs the command; it must succeed when `error` is None, else raise `error`."""
        if error is None:
            result = command(*args)
            outcome = f"{name} ok"
        else:
            try:
                command(*args)
            except error:
                outcome = f"{name} refused {error.__name__}"
            else:
                raise AssertionError(f"{name} should have raised {error.__name__}")
            result = None
        event(outcome)
        self.outcomes[outcome] += 1
        return result

    # --- what the model says is a fitting target ----------------------------------------
    def _where(self, test: Callable[[ModelInstallation], bool]) -> list[UUID]:
        return [i for i, m in self.model.items() if test(m)]

    def _pending(self) -> list[UUID]:
        return self._where(lambda m: m.pending(self.now()))

    def _lapsed(self) -> list[UUID]:
        return self._where(
            lambda m: m.status == "pending_authorization" and not m.pending(self.now())
        )

    def _live(self) -> list[UUID]:
        return self._where(lambda m: m.live(self.now()))

    def _due(self) -> list[UUID]:
        return self._where(lambda m: m.status == "active" and not m.live(self.now()))

    def _renewable(self) -> list[UUID]:
        return [i for i in self.model if self._renew_error(i) is None]

    def _cancellable(self) -> list[UUID]:
        return self._where(lambda m: m.status in ("active", "expired"))

    def _incidents(self, statuses: tuple[str, ...]) -> list[tuple[UUID, UUID]]:
        return [
            (i, k)
            for i, m in self.model.items()
            for k, inc in m.incidents.items()
            if inc.status in statuses
        ]

    def _free_pairs(self) -> list[tuple[int, int]]:
        """(seller, app) indexes without a live installation."""
        taken = {(m.seller, m.app) for m in self.model.values() if m.live(self.now())}
        return [
            (s, a)
            for s in range(2)
            for a in range(2)
            if (self.sellers[s], self.apps[a]) not in taken
        ]

    # --- the commands, checked against the model ----------------------------------------
    def _install(self, seller: int, app: int, duration: str) -> None:
        s, a = self.sellers[seller], self.apps[app]
        current = self.model.get(self.slot.get((s, a)))  # type: ignore[arg-type]
        live = current is not None and current.live(self.now())
        outcome = self.expect(
            "install",
            errors.DuplicateInstallation if live else None,
            functools.partial(installations.install, self.store),
            s,
            a,
            duration,
            "me@shop.example.com",
            "+14155550101",
        )
        if outcome is None:
            return
        if current is not None and current.pending(self.now()):
            current.status = "declined"
        self.model[outcome.id] = ModelInstallation(s, a, self.now(), duration)
        self.slot[(s, a)] = outcome.id

    def _authorize(self, i: UUID) -> None:
        m = self.model[i]
        if m.status != "pending_authorization":
            error: type[Exception] | None = errors.NotPendingAuthorization
        elif not m.pending(self.now()):
            error = errors.AuthorizationLapsed
        else:
            error = None
        self.expect(
            "authorize", error, functools.partial(installations.authorize, self.store), m.seller, i
        )
        if error is None:
            m.status = "active"
            days = DAYS[m.duration]
            m.expires_at = None if days is None else self.now() + timedelta(days=days)

    def _decline(self, i: UUID) -> None:
        m = self.model[i]
        ok = m.status == "pending_authorization"
        self.expect(
            "decline",
            None if ok else errors.NotPendingAuthorization,
            functools.partial(installations.decline, self.store),
            m.seller,
            i,
        )
        if ok:
            m.status = "declined"

    def _lapse(self, i: UUID) -> None:
        m = self.model[i]
        ok = m.status == "pending_authorization" and not m.pending(self.now())
        self.expect(
            "lapse",
            None if ok else errors.NotPendingAuthorization,
            functools.partial(installations.lapse, self.store),
            i,
        )
        if ok:
            m.status = "declined"

    def _renew_error(self, i: UUID) -> type[Exception] | None:
        m, now = self.model[i], self.now()
        effectively_expired = m.status == "expired" or (
            m.status == "active" and m.expires_at is not None and m.expires_at <= now
        )
        if m.status == "cancelled":
            return errors.AlreadyCancelled
        if m.status not in ("active", "expired"):
            return errors.NotRenewable
        if effectively_expired and self.slot[(m.seller, m.app)] != i:
            return errors.NotRenewable
        if m.status == "active" and m.expires_at is None:
            return errors.NotRenewable
        return None

    def _renew(self, i: UUID, duration: str) -> None:
        m, now = self.model[i], self.now()
        error = self._renew_error(i)
        self.expect(
            "renew",
            error,
            functools.partial(installations.renew, self.store),
            m.seller,
            i,
            duration,
        )
        if error is None:
            start = max(now, m.expires_at) if m.expires_at else now
            days = DAYS[duration]
            m.status = "active"
            m.expires_at = None if days is None else start + timedelta(days=days)

    def _cancel(self, i: UUID) -> None:
        m = self.model[i]
        if m.status == "cancelled":
            error: type[Exception] | None = errors.AlreadyCancelled
        elif m.status not in ("active", "expired"):
            error = errors.NotCancellable
        else:
            error = None
        self.expect(
            "cancel", error, functools.partial(installations.cancel, self.store), m.seller, i
        )
        if error is None:
            m.status = "cancelled"

    def _expire(self, i: UUID) -> None:
        m = self.model[i]
        due = m.status == "active" and m.expires_at is not None and m.expires_at <= self.now()
        self.expect(
            "expire",
            None if due else errors.NotExpirable,
            functools.partial(installations.expire, self.store),
            i,
        )
        if due:
            m.status = "expired"

    def _sync_error(self, m: ModelInstallation) -> type[Exception] | None:
        if m.status == "cancelled":
            return errors.InstallationCancelled
        if not m.live(self.now()):
            return errors.InstallationNotActive
        return None

    def _fail_sync(self, i: UUID, area: str, code: str) -> None:
        m = self.model[i]
        self.events += 1
        event_ = SyncEvent(f"ev{self.events}", i, "failure", area, self.now(), code, "boom", ["o1"])
        error = self._sync_error(m)
        result = self.expect(
            "fail_sync", error, functools.partial(sync_events.record_sync_event, self.store), event_
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
                event("fail_sync grouped into an unresolved incident")
            else:
                assert incident_id not in m.incidents
                m.incidents[incident_id] = ModelIncident(area, code)

    def _succeed_sync(self, i: UUID, area: str) -> None:
        m = self.model[i]
        self.events += 1
        event_ = SyncEvent(f"ev{self.events}", i, "success", area, self.now())
        error = self._sync_error(m)
        result = self.expect(
            "succeed_sync",
            error,
            functools.partial(sync_events.record_sync_event, self.store),
            event_,
        )
        if error is None:
            expected = {
                k for k, inc in m.incidents.items() if inc.status != "resolved" and inc.area == area
            }
            assert set(result.incident_ids) == expected
            for k in expected:
                m.incidents[k].status = "resolved"

    def _acknowledge(self, i: UUID, k: UUID) -> None:
        m = self.model[i]
        ok = m.incidents[k].status == "open"
        self.expect(
            "acknowledge",
            None if ok else errors.IncidentNotOpen,
            functools.partial(installations.acknowledge_incident, self.store),
            m.seller,
            i,
            k,
        )
        if ok:
            m.incidents[k].status = "acknowledged"

    def _resolve(self, i: UUID, k: UUID) -> None:
        m = self.model[i]
        ok = m.incidents[k].status != "resolved"
        self.expect(
            "resolve",
            None if ok else errors.IncidentAlreadyResolved,
            functools.partial(installations.resolve_incident, self.store),
            m.seller,
            i,
            k,
        )
        if ok:
            m.incidents[k].status = "resolved"

    # --- targets made on purpose, through the same checked commands ---------------------
    def _new_pending(self, pick: int, duration: str) -> UUID | None:
        free = self._free_pairs()
        if not free:
            return None
        seller, app = _pick(free, pick)
        self._install(seller, app, duration)
        return self.slot[(self.sellers[seller], self.apps[app])]

    def _new_live(self, pick: int, duration: str = "30d") -> UUID | None:
        pending = self._pending()
        i = _pick(pending, pick) if pending else self._new_pending(pick, duration)
        if i is not None:
            self._authorize(i)
        return i if i is not None and self.model[i].live(self.now()) else None

    def _new_expiring(self, pick: int) -> UUID | None:
        """A live installation that has an expiry."""
        live = self._where(lambda m: m.live(self.now()) and m.expires_at is not None)
        return _pick(live, pick) if live else self._new_live(pick, _pick(TIMED, pick))

    def _new_incident(self, pick: int, area: str) -> tuple[UUID, UUID] | None:
        """A new open incident (its error code is new, so it cannot group into another)."""
        live = self._live()
        i = _pick(live, pick) if live else self._new_live(pick)
        if i is None:
            return None
        before = set(self.model[i].incidents)
        self._fail_sync(i, area, f"N{self.events}")
        (k,) = set(self.model[i].incidents) - before
        return i, k

    # --- the rule -------------------------------------------------------------------------
    # One rule draws the command: hypothesis's swarm testing turns whole rules off for a
    # run, which starved most runs of the commands that need a history (expiry, incidents).
    @rule(
        command=st.sampled_from(WEIGHTED),
        pick=PICK,
        area=st.sampled_from(AREAS),
        code=st.sampled_from(CODES),
        duration=st.sampled_from(list(DAYS)),
        extra=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(days=2)]),
        aim=st.integers(0, 7),
    )
    def step(
        self,
        command: str,
        pick: int,
        area: str,
        code: str,
        duration: str,
        extra: timedelta,
        aim: int,
    ) -> None:
        """The command, aimed at a target the model says it applies to (when there is none,
        one is made first: an install to authorize, an authorization to cancel, ...); one
        time in eight (aim == 0) at any installation, most likely to be refused."""
        if command == "advance":
            self.clock.advance(_pick(STEPS, pick))
        elif command == "install":
            seller, app = _pick(self._free_pairs() or [(pick % 2, pick // 2 % 2)], pick)
            self._install(seller, app, duration)
        elif aim == 0:
            self._on_any_installation(command, pick, area, code, duration)
        elif command in ("authorize", "decline", "lapse"):
            pending = self._pending()
            i = _pick(pending, pick) if pending else self._new_pending(pick, duration)
            if i is None:
                return
            if command == "lapse" or aim == 1:  # aim 1: authorize or decline too late
                self.clock.advance(WINDOW + timedelta(seconds=1) + extra)
            getattr(self, f"_{command}")(i)
        elif command == "renew":
            renewable = self._renewable()
            i = _pick(renewable, pick) if renewable else self._new_expiring(pick)
            if i is not None:
                self._renew(i, duration)
        elif command == "cancel":
            cancellable = self._cancellable()
            i = _pick(cancellable, pick) if cancellable else self._new_live(pick, duration)
            if i is not None:
                self._cancel(i)
        elif command == "expire":
            i = self._new_expiring(pick)
            expires_at = self.model[i].expires_at if i is not None else None
            if i is not None and expires_at is not None:
                self.clock.set(max(self.now(), expires_at + extra))  # exactly at expiry too
                self._expire(i)
        elif command == "fail_sync":
            self._command_fail_sync(pick, area, code, duration)
        elif command == "succeed_sync":
            unresolved = [(i, k) for i in self._live() for k in self.model[i].unresolved()]
            target = _pick(unresolved, pick) if unresolved else self._new_incident(pick, area)
            if target is not None:
                i, k = target
                self._succeed_sync(i, self.model[i].incidents[k].area)
        else:
            statuses = ("open",) if command == "acknowledge" else ("open", "acknowledged")
            incidents = self._incidents(statuses)
            target = _pick(incidents, pick) if incidents else self._new_incident(pick, area)
            if target is not None:
                getattr(self, f"_{command}")(*target)

    def _command_fail_sync(self, pick: int, area: str, code: str, duration: str) -> None:
        """A failure; half the time the same failure as an unresolved incident (it groups)."""
        again = [(i, k) for i in self._live() for k in self.model[i].unresolved()]
        if again and pick % 2:
            i, k = _pick(again, pick)
            incident = self.model[i].incidents[k]
            self._fail_sync(i, incident.area, incident.code)
            return
        live = self._live()
        i = _pick(live, pick) if live else self._new_live(pick, duration)
        if i is not None:
            self._fail_sync(i, area, code)

    def _on_any_installation(
        self, command: str, pick: int, area: str, code: str, duration: str
    ) -> None:
        """Mostly refusals: the model says which, and which error."""
        if not self.model:
            return
        i = _pick(list(self.model), pick)
        incidents = list(self.model[i].incidents)
        if command in ("acknowledge", "resolve"):
            if incidents:
                getattr(self, f"_{command}")(i, _pick(incidents, pick))
        elif command == "renew":
            self._renew(i, duration)
        elif command == "fail_sync":
            self._fail_sync(i, area, code)
        elif command == "succeed_sync":
            self._succeed_sync(i, area)
        else:
            getattr(self, f"_{command}")(i)

    # --- invariants ---------------------------------------------------------------------
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


class SQLiteLifecycle(Lifecycle):
    """The same machine on an SQLite file: the events go through the real encoding."""

    def make_store(self, clock: FixedClock) -> Store:
        url = self.resources.enter_context(sqlite_database())
        return build_store(Settings(database_url=url, fast_password_hashing=True), clock=clock)


_SETTINGS = dict(
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(max_examples=100, **_SETTINGS)  # type: ignore[arg-type]
TestLifecycleOnSQLite = SQLiteLifecycle.TestCase
TestLifecycleOnSQLite.settings = settings(max_examples=50, **_SETTINGS)  # type: ignore[arg-type]
