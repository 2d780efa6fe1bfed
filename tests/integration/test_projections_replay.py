"""Replay equals live: for rich generated histories, and after a projector is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from projections.due_installations import DueInstallations
from projections.read_side import all_projections, build_projector, snapshot
from tests import factories as f
from tests.databases import fresh_database
from tests.histories import COUNTED, OPS, World, bucket, event_counts

PROJECTIONS = [p.name for p in all_projections()]
HISTORIES = st.lists(
    st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 16)), min_size=20, max_size=80
)
EXAMPLE_SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def replay_equals_live(backend: str, commands: list[tuple[str, int]], live_batch: int) -> None:
    """Runs the commands with the projections stepping along (batches of `live_batch`), then
    checks that a replay from position 0 builds exactly the same rows."""
    with fresh_database(backend) as url:
        clock = FixedClock()
        store = build_store(Settings(database_url=url, fast_password_hashing=True), clock=clock)
        projector = build_projector(store, url, batch_size=live_batch)

        def due() -> DueInstallations:
            projector.catch_up()  # the sweep reads the read model, as `appstore expire` does
            return DueInstallations(projector.engine)

        world = World(store, clock, due)
        try:
            for op, n in commands:
                before = store.head()
                if not world.apply(op, n):
                    assert store.head() == before, f"refused {op} appended events"
                projector.step(PROJECTIONS[n % len(PROJECTIONS)])  # live, among the commands
            projector.catch_up()
            live = snapshot(projector)
            replayer = build_projector(store, url, batch_size=500)
            for name in replayer.projections:
                replayer.reset(name)
            replayer.catch_up()
            assert snapshot(replayer) == live
            replayer.engine.dispose()
            describe(event_counts(store))
        finally:
            projector.engine.dispose()
            store.close()


def describe(counts: Counter[str]) -> None:
    """What the example's log held, for --hypothesis-show-statistics."""
    for name in COUNTED:
        event(f"{name}: {bucket(counts.get(name, 0))}")
    total = sum(counts.values())
    event(f"events in the log: {bucket(total)}")
    target(float(total), label="events in the log")
    incidents = sum(n for name, n in counts.items() if "Incident" in name)
    target(float(incidents), label="incident events")


@settings(max_examples=60, **EXAMPLE_SETTINGS)  # type: ignore[arg-type]
@given(commands=HISTORIES, live_batch=st.integers(1, 9))
def test_read_models_built_live_equal_read_models_rebuilt_by_replay(
    commands: list[tuple[str, int]], live_batch: int
) -> None:
    replay_equals_live("sqlite", commands, live_batch)


@pytest.mark.postgres
@settings(max_examples=8, **EXAMPLE_SETTINGS)  # type: ignore[arg-type]
@given(commands=HISTORIES, live_batch=st.integers(1, 9))
def test_read_models_built_live_equal_read_models_rebuilt_by_replay_on_postgres(
    commands: list[tuple[str, int]], live_batch: int
) -> None:
    replay_equals_live("postgres", commands, live_batch)


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
