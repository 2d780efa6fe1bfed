"""Real concurrent writers (separate processes) on PostgreSQL never lose an update."""

from __future__ import annotations

import multiprocessing as mp
from datetime import timedelta
from uuid import UUID

import pytest

from application import installations
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain import errors
from domain.clock import FixedClock
from domain.values import InstallationStatus
from tests import factories as f

pytestmark = pytest.mark.postgres
WORKERS = 4
RENEWS_EACH = 8


def _renew_many(url: str, seller: str, installation: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    store = build_store(Settings(database_url=url, fast_password_hashing=True), clock=FixedClock())
    barrier.wait()
    done = 0
    for _ in range(RENEWS_EACH):
        try:
            installations.renew(store, UUID(seller), UUID(installation), "30d")
            done += 1
        except errors.ConcurrentUpdate:
            pass  # answered 409 to the client: allowed, as long as nothing is lost
    results.put(done)
    store.close()


def _install_and_authorize(url: str, seller: str, app: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    store = build_store(Settings(database_url=url, fast_password_hashing=True), clock=FixedClock())
    barrier.wait()
    try:
        installation = installations.install(
            store, UUID(seller), UUID(app), "30d", "a@b.example.com", "+14155550100"
        )
        installations.authorize(store, UUID(seller), installation.id)
        results.put("active")
    except (
        errors.DuplicateInstallation,
        errors.NotPendingAuthorization,
        errors.ConcurrentUpdate,
    ) as error:
        results.put(type(error).__name__)
    store.close()


def _start_store(url: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        store = build_store(Settings(database_url=url, fast_password_hashing=True))
    except Exception as error:  # reported to the test, which fails on it
        results.put(repr(error))
        return
    results.put(store.application.recorder.max_notification_id() or 0)
    store.close()


def _run(target, *args) -> list[object]:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def test_concurrent_renewals_are_all_applied(postgres_url: str) -> None:
    clock = FixedClock()
    store = build_store(
        Settings(database_url=postgres_url, fast_password_hashing=True), clock=clock
    )
    seller, app = f.seller(store), f.app(store)
    installation = f.active_installation(store, seller, app, "30d")
    start_expiry = installations.installation(store, installation).expires_at
    assert start_expiry is not None

    done = _run(_renew_many, postgres_url, str(seller), str(installation))

    total = sum(int(d) for d in done)  # type: ignore[call-overload]
    assert total >= WORKERS * RENEWS_EACH // 2  # most win after retrying
    final = installations.installation(store, installation)
    # Each renewal extends from the previous expiry: none may be lost.
    assert final.expires_at == start_expiry + timedelta(days=30 * total)
    renewed = [
        e for e in store.application.events.get(installation) if type(e).__name__ == "Renewed"
    ]
    assert len(renewed) == total
    store.close()


def test_concurrent_installs_leave_exactly_one_active_installation(postgres_url: str) -> None:
    store = build_store(
        Settings(database_url=postgres_url, fast_password_hashing=True), clock=FixedClock()
    )
    seller, app = f.seller(store), f.app(store)

    outcomes = _run(_install_and_authorize, postgres_url, str(seller), str(app))

    assert outcomes.count("active") == 1, outcomes
    installed = [
        installations.installation(store, n.originator_id)
        for n in store.application.recorder.select_notifications(start=1, limit=10_000)
        if n.topic.endswith("Installation.Installed")
    ]
    active = [i for i in installed if i.status is InstallationStatus.ACTIVE]
    assert len(active) == 1
    assert all(i.status is InstallationStatus.DECLINED for i in installed if i not in active)
    store.close()


def test_processes_starting_together_on_a_fresh_database_all_start(postgres_url: str) -> None:
    # api workers, projectors and consumers start at once; each creates the schema.
    for _ in range(3):
        assert _run(_start_store, postgres_url) == [0] * WORKERS
