"""The store's aggregate cache (application/aggregate_cache.py), on both backends: a cached
copy is only a starting point, so what other processes write is seen, and a write decided
on a copy that went stale is refused and tried again, never lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from application import installations
from application.store import Outcome, Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.app_listing import AppListing
from domain.claims import InstallationSlot, installation_slot_id
from domain.clock import FixedClock
from domain.installation import Installation
from domain.values import Duration, InstallationStatus
from tests import factories as f


@pytest.fixture
def cached(settings: Settings, clock: FixedClock) -> Iterator[Store]:
    """A second process's store, with the aggregate cache the API and the consumer use."""
    store = build_store(settings, clock=clock, aggregate_cache=100)
    yield store
    store.close()


def decodes(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every stored event the store decodes from now on."""
    seen: list[Any] = []
    mapper = store.application.mapper
    decode = mapper.to_domain_event

    def counting(stored: Any) -> Any:
        seen.append(stored)
        return decode(stored)

    monkeypatch.setattr(mapper, "to_domain_event", counting)
    return seen


def test_a_cached_copy_is_fast_forwarded_with_what_another_process_appended(
    store: Store, cached: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)  # saved: now in the cache
    seen = decodes(cached, monkeypatch)
    before = cached.load(installation_id, Installation)
    assert before is not None and before.status is InstallationStatus.ACTIVE
    assert seen == []  # the state it saved, nothing replayed

    installations.renew(store, seller, installation_id, "30d")  # another process
    installations.cancel(store, seller, installation_id)
    after = cached.load(installation_id, Installation)
    assert after is not None and after.status is InstallationStatus.CANCELLED
    assert [s.originator_version for s in seen] == [3, 4]  # only the two it had not seen
    assert after.expires_at == before.expires_at + timedelta(days=30)  # type: ignore[operator]


def test_a_write_decided_on_a_stale_copy_is_refused_and_retried_not_lost(
    store: Store, cached: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    start = cached.load(installation_id, Installation)
    assert start is not None and start.expires_at is not None
    attempts = []

    def renew_once_more() -> Outcome:
        found = cached.load(installation_id, Installation)
        assert found is not None
        if not attempts:  # between this read and the append, another process renews
            installations.renew(store, seller, installation_id, "30d")
        attempts.append(found.version)
        found.renew(Duration.parse("30d"), clock.now())
        return Outcome(found.id, cached.save(found))

    cached.retrying(renew_once_more)

    assert attempts == [2, 3]  # refused once, then decided again on the newer state
    for reader in (store, cached):
        final = reader.load(installation_id, Installation)
        assert final is not None and final.version == 4
        assert final.expires_at == start.expires_at + timedelta(days=60)


def test_a_refused_append_leaves_the_cache_as_it_was(store: Store, cached: Store) -> None:
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)
    mine = cached.load(installation_id, Installation)
    assert mine is not None
    installations.cancel(store, seller, installation_id)  # another process, first
    mine.renew(Duration.parse("30d"), cached.clock.now())
    with pytest.raises(IntegrityError):
        cached.save(mine)
    found = cached.load(installation_id, Installation)
    assert found is not None and found.status is InstallationStatus.CANCELLED
    assert found.version == 3


def test_each_load_gets_an_object_of_its_own(cached: Store, clock: FixedClock) -> None:
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)
    changed = cached.load(installation_id, Installation)
    assert changed is not None
    changed.cancel(clock.now())  # changed, never saved (a command that failed half-way)
    again = cached.load(installation_id, Installation)
    assert again is not None and again is not changed
    assert again.status is InstallationStatus.ACTIVE and again.version == 2


def test_a_saved_object_its_saver_still_holds_is_never_handed_to_a_load(
    cached: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state just saved is kept as the saved object; while its saver still refers to it
    (and may go on changing it), a load reads the log instead of sharing it."""
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)
    saved = cached.load(installation_id, Installation)
    assert saved is not None
    saved.renew(Duration.parse("30d"), clock.now())
    cached.save(saved)  # kept: the object itself, and the saver still holds it
    seen = decodes(cached, monkeypatch)
    again = cached.load(installation_id, Installation)
    assert again is not None and again is not saved and seen  # read from the log
    assert again.__dict__ == saved.__dict__
    saved.cancel(clock.now())  # the saver goes on, and never saves this
    later = cached.load(installation_id, Installation)
    assert later is not None and later.status is InstallationStatus.ACTIVE
    assert later.version == 3


def test_a_saved_object_its_saver_let_go_is_handed_to_one_load(
    cached: Store, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)
    saved = cached.load(installation_id, Installation)
    assert saved is not None
    saved.renew(Duration.parse("30d"), clock.now())
    cached.save(saved)
    state, kept = dict(saved.__dict__), id(saved)
    del saved  # the saver is done with it
    seen = decodes(cached, monkeypatch)
    first = cached.load(installation_id, Installation)
    assert first is not None and id(first) == kept and seen == []  # taken, nothing read
    assert first.__dict__ == state
    first.cancel(clock.now())  # its new owner changes it, and never saves this
    second = cached.load(installation_id, Installation)
    assert second is not None and second is not first and seen == []  # kept, pickled
    assert second.status is InstallationStatus.ACTIVE and second.version == 3


@pytest.mark.parametrize("cache", [0, 100])
def test_load_pair_answers_each_as_load_does(
    settings: Settings, clock: FixedClock, cache: int
) -> None:
    store = build_store(settings, clock=clock, aggregate_cache=cache)
    try:
        seller, app = f.seller(store), f.app(store)
        slot_id = installation_slot_id(seller, app)
        listing, slot = store.load_pair(app, AppListing, slot_id, InstallationSlot)
        assert listing is not None and listing.id == app and slot is None
        installation_id = installations.install(
            store, seller, app, "90d", "ops@shop.example.com", "+14155550101"
        ).id
        listing, slot = store.load_pair(app, AppListing, slot_id, InstallationSlot)
        assert slot is not None and slot.installation_id == installation_id
        # The wrong kind, or nothing there: None, as `load` answers.
        wrong, missing = store.load_pair(app, InstallationSlot, uuid4(), AppListing)
        assert wrong is None and missing is None
        assert store.load(app, InstallationSlot) is None
    finally:
        store.close()


def test_an_installation_first_seen_by_a_cached_store_is_loaded_whole(
    store: Store, cached: Store
) -> None:
    """Snapshotted kinds the cache does not know yet start from the repository."""
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    found = cached.load(installation_id, Installation)
    assert found is not None and found.version == 2
    assert found.status is InstallationStatus.ACTIVE
    assert cached.load(UUID(int=7), Installation) is None


def test_a_store_that_forgets_drops_its_cached_copies(
    cached: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Store.forget` (the benches' cold process) empties the aggregate cache too."""
    seller, app = f.seller(cached), f.app(cached)
    installation_id = f.active_installation(cached, seller, app)
    seen = decodes(cached, monkeypatch)
    assert cached.load(installation_id, Installation) is not None
    assert seen == []  # served from the copy kept at save
    cached.forget()
    assert cached.load(installation_id, Installation) is not None
    assert seen != []  # read from the log again
