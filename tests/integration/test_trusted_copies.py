"""A command's first attempt decides on the copies its process keeps, without asking the log
(application/attempts.py); the append confirms them in the same statement, or a probe does
when nothing is appended. These are the races that confirmation must catch: another
process writes between our copy and our append, to an aggregate we write, to one we only
read, to one we took to be new, and before a command that ends in an error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from application import installations, listings, sync_events
from application.attempts import StaleReads
from application.store import Outcome, Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.app_listing import AppListing
from domain.claims import InstallationSlot, installation_slot_id
from domain.errors import AppDelisted, DuplicateInstallation
from domain.incident import SyncEvent
from domain.installation import Installation
from domain.values import InstallationStatus
from tests import factories as f

pytestmark = pytest.mark.postgres


def _store(url: str) -> Store:
    settings = Settings(database_url=url, fast_password_hashing=True)
    return build_store(settings, aggregate_cache=1000)


@pytest.fixture
def ours(postgres_url: str) -> Iterator[Store]:
    """This process's store, with the aggregate cache serve runs with."""
    store = _store(postgres_url)
    yield store
    store.close()


@pytest.fixture
def theirs(postgres_url: str) -> Iterator[Store]:
    """Another process's store on the same log."""
    store = _store(postgres_url)
    yield store
    store.close()


def _listed(store: Store, app_id: object) -> bool:
    found = store.load(app_id, AppListing)  # type: ignore[arg-type]
    return found is not None and found.is_listed


def test_a_write_between_our_copy_and_our_append_is_refused_then_decided_again(
    ours: Store, theirs: Store
) -> None:
    seller, app = f.seller(ours), f.app(ours)
    installation_id = f.active_installation(ours, seller, app)  # kept by `ours`
    seen: list[InstallationStatus] = []

    def renew() -> Outcome:
        found = installations.own_installation(ours, seller, installation_id)
        seen.append(found.status)
        if len(seen) == 1:  # the other process cancels after our read, before our append
            installations.cancel(theirs, seller, installation_id)
        if found.status is InstallationStatus.CANCELLED:
            return Outcome(found.id, None)
        found.renew(installations.v.Duration.parse("30d"), ours.clock.now())
        return Outcome(found.id, ours.save(found))

    assert ours.retrying(renew).position is None
    assert seen == [InstallationStatus.ACTIVE, InstallationStatus.CANCELLED]
    found = theirs.load(installation_id, Installation)
    assert found is not None and found.status is InstallationStatus.CANCELLED


def test_an_aggregate_only_read_is_confirmed_at_the_append(ours: Store, theirs: Store) -> None:
    """Without the confirmation, an install decided on the kept listing would go through
    on an app the other process delisted (the listing itself is not written)."""
    developer, seller = f.developer(ours), f.seller(ours)
    app = f.app(ours, developer)
    assert _listed(ours, app)  # kept
    listings.delist_app(theirs, developer, app)
    with pytest.raises(AppDelisted):
        installations.install(ours, seller, app, "90d", "ops@shop.example.com", "+14155550101")
    assert ours.load(installation_slot_id(seller, app), InstallationSlot) is None


def test_a_stale_read_stores_nothing_and_is_told_apart_from_a_lost_race(
    ours: Store, theirs: Store
) -> None:
    developer, seller = f.developer(ours), f.seller(ours)
    app = f.app(ours, developer)
    installation_id = f.active_installation(ours, seller, app)
    listings.delist_app(theirs, developer, app)
    head = ours.head()
    attempts: list[int] = []

    def renew_once() -> Outcome:
        attempts.append(1)
        if len(attempts) > 1:
            raise RuntimeError("second attempt")
        assert _listed(ours, app)  # the kept copy, trusted
        found = installations.own_installation(ours, seller, installation_id)
        found.renew(installations.v.Duration.parse("30d"), ours.clock.now())
        try:
            return Outcome(found.id, ours.save(found))
        except StaleReads:
            attempts.append(0)
            raise

    with pytest.raises(RuntimeError, match="second attempt"):
        ours.retrying(renew_once)
    assert attempts == [1, 0, 1]  # refused as stale, then tried again at once
    assert ours.head() == head  # the renewal was not stored


def test_a_claim_taken_to_be_new_is_confirmed_absent(ours: Store, theirs: Store) -> None:
    """`ours` has never seen the seller's slot for this app: its first attempt takes it as
    new; the other process's installation must still be found."""
    seller, app = f.seller(theirs), f.app(theirs)
    f.active_installation(theirs, seller, app)
    with pytest.raises(DuplicateInstallation):
        installations.install(ours, seller, app, "90d", "ops@shop.example.com", "+14155550101")


def test_an_error_decided_on_a_stale_copy_is_decided_again(ours: Store, theirs: Store) -> None:
    """The kept installation has not seen the incident the other process recorded: the
    first attempt fails (incident not found), the probe finds the copy stale, the second
    attempt acknowledges it."""
    seller, app = f.seller(ours), f.app(ours)
    installation_id = f.active_installation(ours, seller, app)
    assert ours.load(installation_id, Installation) is not None  # kept
    report = SyncEvent(
        event_id="e1",
        installation_id=installation_id,
        kind="failure",
        area="orders",
        occurred_at=datetime.now().astimezone(),
        error_code="ORDER_SYNC_TIMEOUT",
        message="upstream timed out",
    )
    (incident_id,) = sync_events.record_sync_event(theirs, report).incident_ids
    assert installations.acknowledge_incident(ours, seller, installation_id, incident_id).position
    found = theirs.load(installation_id, Installation)
    assert found is not None and found.incidents[incident_id].acknowledged_at is not None


def test_a_stale_read_is_not_taken_for_a_taken_name(ours: Store, theirs: Store) -> None:
    """list_app reads an IntegrityError of its append as a taken slug; the refusal of a
    stale copy trusted by the attempt around it reaches that attempt, which runs again."""
    developer = f.developer(ours)
    app = f.app(ours, developer)
    assert _listed(ours, app)  # kept
    listings.delist_app(theirs, developer, app)
    seen: list[bool] = []

    def attempt() -> object:
        seen.append(_listed(ours, app))
        return listings.list_app(ours, developer, f.listing())

    ours.retrying(attempt)
    assert seen == [True, False]
