"""Replay equals live: for any command sequence, and after a projector is SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application import installations, listings, sync_events
from application.expiry import sweep
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.errors import DomainError
from domain.incident import SyncEvent
from projections.my_apps import DueInstallations
from projections.read_side import build_projector, snapshot
from projections.runner import Projector
from tests import factories as f

OPS = (
    "seller",
    "app",
    "update",
    "delist",
    "install",
    "authorize",
    "decline",
    "renew",
    "cancel",
    "time",
    "sweep",
    "failure",
    "success",
    "acknowledge",
    "resolve",
)


class World:
    """Applies generated commands to a store, remembering ids to refer to later."""

    def __init__(self, store: Store, clock: FixedClock, projector: Projector) -> None:
        self.store, self.clock, self.projector = store, clock, projector
        self.developer = f.developer(store)
        self.sellers: list[UUID] = [f.seller(store)]
        self.apps: list[UUID] = []
        self.installations: list[tuple[UUID, UUID]] = []  # (seller, installation)
        self.incidents: list[tuple[UUID, UUID, UUID]] = []
        self.events = 0

    def apply(self, op: str, n: int) -> None:
        s = self.store

        def pick(items: list, default: object = None) -> object:  # type: ignore[type-arg]
            return items[n % len(items)] if items else default

        if op == "seller":
            self.sellers.append(f.seller(s))
        elif op == "app":
            cats = ["connectors", "analytics", "marketing", "shipping-fulfillment"]
            self.apps.append(
                f.app(
                    s, self.developer, categories=[cats[n % 4]], platforms=["etsy", "ebay"][: n % 3]
                )
            )
        elif op == "update" and self.apps:
            listings.update_app(s, self.developer, pick(self.apps), {"name": f"Renamed {n}"})
        elif op == "delist" and self.apps:
            listings.delist_app(s, self.developer, pick(self.apps))
        elif op == "install" and self.apps:
            seller = pick(self.sellers)
            outcome = installations.install(
                s, seller, pick(self.apps), "30d", "a@shop.example.com", "+14155550123"
            )
            self.installations.append((seller, outcome.id))  # type: ignore[arg-type]
        elif op in ("authorize", "decline", "cancel") and self.installations:
            seller, installation = pick(self.installations)  # type: ignore[misc]
            getattr(installations, op)(s, seller, installation)
        elif op == "renew" and self.installations:
            seller, installation = pick(self.installations)  # type: ignore[misc]
            installations.renew(s, seller, installation, "90d")
        elif op == "time":
            self.clock.advance(timedelta(days=n % 40, minutes=n))
        elif op == "sweep":
            self.projector.catch_up()
            sweep(s, DueInstallations(self.projector.engine))
        elif op in ("failure", "success") and self.installations:
            seller, installation = pick(self.installations)  # type: ignore[misc]
            self.events += 1
            result = sync_events.record_sync_event(
                s,
                SyncEvent(
                    event_id=f"ev-{self.events}",
                    installation_id=installation,
                    kind=op,
                    area=["orders", "inventory"][n % 2],
                    occurred_at=self.clock.now(),
                    error_code=f"E{n % 3}",
                    message="sync failed",
                    object_ids=[f"o-{n}"],
                ),
            )
            for incident in result.incident_ids:
                self.incidents.append((seller, installation, incident))
        elif op in ("acknowledge", "resolve") and self.incidents:
            seller, installation, incident = pick(self.incidents)  # type: ignore[misc]
            getattr(s, f"{op}_incident")(seller, installation, incident)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    commands=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 1000)), max_size=40),
    live_batch=st.integers(1, 9),
)
def test_read_models_built_live_equal_read_models_rebuilt_by_replay(
    commands: list[tuple[str, int]], live_batch: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.db"
        clock = FixedClock()
        store = build_store(Settings(database_url=url, fast_password_hashing=True), clock=clock)
        projector = build_projector(store, url, batch_size=live_batch)
        world = World(store, clock, projector)
        for op, n in commands:
            # refused commands append nothing; that is part of the property too
            with contextlib.suppress(DomainError):
                world.apply(op, n)
            projector.step(["catalog", "my_apps", "incidents"][n % 3])  # live, interleaved
        projector.catch_up()
        live = snapshot(projector)
        replayer = build_projector(store, url, batch_size=500)
        for name in replayer.projections:
            replayer.reset(name)
        replayer.catch_up()
        assert snapshot(replayer) == live
        projector.engine.dispose()
        replayer.engine.dispose()
        store.close()


def _fill(store: Store, apps: int) -> None:
    dev = f.developer(store)
    sellers = [f.seller(store) for _ in range(10)]
    for n in range(apps):
        app_id = f.app(store, dev, categories=[["connectors", "analytics"][n % 2]])
        f.active_installation(store, sellers[n % 10], app_id)


@pytest.mark.postgres
@pytest.mark.slow
def test_projector_killed_mid_batch_resumes_to_the_same_read_models(postgres_url: str) -> None:
    settings_ = Settings(database_url=postgres_url, fast_password_hashing=True)
    store = build_store(settings_, clock=FixedClock())
    _fill(store, 150)
    head = store.application.recorder.max_notification_id()
    checker = build_projector(store, postgres_url)  # creates the tables
    env = {
        **os.environ,
        "APPSTORE_DATABASE_URL": postgres_url,
        "APPSTORE_PROJECTOR_BATCH_SIZE": "40",
    }
    command = [str(Path(sys.executable).parent / "appstore"), "project"]

    def positions() -> dict[str, int]:
        return checker.positions()

    kills = 0
    for _ in range(3):  # kill it up to three times somewhere in the middle
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                current = positions()
                if max(current.values()) > 0 and min(current.values()) < head:
                    break
                if min(current.values()) >= head:
                    break
                time.sleep(0.002)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        if min(positions().values()) < head:
            kills += 1
    assert kills >= 1, "the projector finished before it could be killed"

    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while min(positions().values()) < head and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0  # SIGTERM is a clean stop
    assert min(positions().values()) == head
    resumed = snapshot(checker)

    for name in checker.projections:
        checker.reset(name)
    checker.catch_up()
    assert snapshot(checker) == resumed
    checker.engine.dispose()
    store.close()
