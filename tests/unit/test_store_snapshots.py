"""Snapshots of a just-saved aggregate come from its state in memory (application/store.py),
not from reading it back and replaying it; they load the same state as a replay."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from application import installations, sync_events
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.incident import SyncEvent
from domain.installation import Installation
from tests import factories as f


def test_a_snapshot_is_taken_from_the_saved_aggregate_without_reading_it_back(
    store: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation_id = f.active_installation(store, f.seller(store), f.app(store), "unlimited")

    def read_back(*args: object, **kwargs: object) -> None:
        raise AssertionError("the snapshot was read back from the database")

    monkeypatch.setattr(store.application, "take_snapshot", read_back)
    version = installations.installation(store, installation_id).version
    for n in range(100 - version):
        clock.advance(timedelta(seconds=1))
        code = "A" if n % 3 else "B"
        report = SyncEvent(f"e{n}", installation_id, "failure", "orders", clock.now(), code)
        sync_events.record_sync_event(store, report)
    assert store.application.snapshots is not None
    [snapshot] = store.application.snapshots.get(installation_id)
    assert snapshot.originator_version == 100
    from_snapshot = installations.installation(store, installation_id)
    replayed = None
    for domain_event in store.application.events.get(installation_id):
        replayed = domain_event.mutate(replayed)
    assert replayed is not None and replayed.__dict__ == from_snapshot.__dict__
    assert from_snapshot.has_applied("e0")


def test_a_save_that_passes_the_interval_snapshots_its_last_state(
    store: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation_id = f.active_installation(store, f.seller(store), f.app(store), "unlimited")
    installation = installations.installation(store, installation_id)
    monkeypatch.setattr(store.application, "take_snapshot", None)  # never read back
    for n in range(101 - installation.version + 3):  # one save: version 2 → 104
        installation.record_sync(
            SyncEvent(f"e{n}", installation_id, "failure", "a", clock.now(), f"E{n % 5}"),
            clock.now(),
        )
    store.save(installation)
    assert store.application.snapshots is not None
    [snapshot] = store.application.snapshots.get(installation_id)
    assert snapshot.originator_version == 104
    loaded = installations.installation(store, installation_id)
    assert loaded.version == 104 and sum(i.count for i in loaded.incidents.values()) == 102


def test_a_load_past_the_cache_reads_the_latest_state_from_the_newest_snapshot(
    store: Store, clock: FixedClock, settings: Settings
) -> None:
    cached = build_store(settings, clock=clock, aggregate_cache=100)
    installation_id = f.active_installation(store, f.seller(store), f.app(store), "unlimited")
    assert cached.load(installation_id, Installation) is not None  # an old copy, cached
    installation = installations.installation(store, installation_id)
    for n in range(120):
        installation.record_sync(
            SyncEvent(f"e{n}", installation_id, "failure", "a", clock.now(), f"E{n % 5}"),
            clock.now(),
        )
    store.save(installation)
    fresh = cached.load(installation_id, Installation, cached=False)
    assert fresh is not None and fresh.version == installation.version
    assert fresh.__dict__ == installation.__dict__
    assert cached.load(uuid4(), Installation, cached=False) is None
    cached.close()


def test_the_snapshots_of_one_save_are_stored_together(
    store: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_id = f.app(store)
    ids = [f.active_installation(store, f.seller(store), app_id, "unlimited") for _ in range(3)]
    loaded = [installations.installation(store, i) for i in ids]
    for installation in loaded:
        for n in range(100):
            report = SyncEvent(f"e{n}", installation.id, "failure", "a", clock.now(), f"E{n % 5}")
            installation.record_sync(report, clock.now())
    assert store.application.snapshots is not None
    puts: list[int] = []
    put = store.application.snapshots.put
    monkeypatch.setattr(
        store.application.snapshots,
        "put",
        lambda items, **kw: puts.append(len(items)) or put(items, **kw),
    )
    store.save(*loaded)
    assert puts == [3]
    assert all(list(store.application.snapshots.get(i)) for i in ids)


def test_changed_names_the_aggregates_another_writer_appended_to(
    store: Store, clock: FixedClock
) -> None:
    app_id = f.app(store)
    ids = [f.active_installation(store, f.seller(store), app_id, "unlimited") for _ in range(2)]
    kept = {ids[0]: 2, ids[1]: 2, uuid4(): 0}
    installations.cancel(store, installations.installation(store, ids[1]).seller_id, ids[1])
    assert store.changed(kept) == {ids[1]}
    assert store.changed({}) == set()
