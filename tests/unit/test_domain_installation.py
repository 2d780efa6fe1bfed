"""The install → authorize → renew → cancel lifecycle and incidents, on both backends."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pytest

from application import installations, listings, sync_events
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.errors import (
    AlreadyCancelled,
    AppDelisted,
    AuthorizationLapsed,
    DuplicateInstallation,
    IncidentAlreadyResolved,
    IncidentNotOpen,
    InstallationCancelled,
    InstallationNotFound,
    InvalidDuration,
    NotExpirable,
    NotPendingAuthorization,
    NotRenewable,
    WrongRole,
)
from domain.incident import SyncEvent
from domain.installation_snapshot import InstallationSnapshot
from domain.values import IncidentStatus, InstallationStatus
from tests import factories as f


def failure(installation_id, event_id, clock, area="orders", code="ORDER_SYNC_TIMEOUT", ids=()):
    return SyncEvent(
        event_id=event_id,
        installation_id=installation_id,
        kind="failure",
        area=area,
        occurred_at=clock.now(),
        error_code=code,
        message="upstream timed out",
        object_ids=list(ids),
    )


def success(installation_id, event_id, clock, area="orders"):
    return SyncEvent(event_id, installation_id, "success", area, clock.now())


def test_install_is_pending_until_authorized(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    outcome = installations.install(
        store, seller, app, "90d", "me@shop.example.com", "+1 415 555 0101"
    )
    installation = installations.installation(store, outcome.id)
    assert installation.status is InstallationStatus.PENDING_AUTHORIZATION
    assert installation.contact_phone == "+14155550101"
    assert installation.expires_at is None
    installations.authorize(store, seller, outcome.id)
    installation = installations.installation(store, outcome.id)
    assert installation.status is InstallationStatus.ACTIVE
    assert installation.authorized_at == clock.now()
    assert installation.expires_at == clock.now() + timedelta(days=90)


def test_unlimited_never_expires(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app, "unlimited")
    clock.advance(timedelta(days=3650))
    assert installations.installation(store, installation_id).is_live(clock.now())
    with pytest.raises(NotExpirable):
        installations.expire(store, installation_id)
    with pytest.raises(NotRenewable):
        installations.renew(store, seller, installation_id, "30d")


def test_renew_extends_from_the_later_of_now_and_expiry(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app, "30d")
    start = clock.now()
    clock.advance(timedelta(days=10))
    installations.renew(store, seller, installation_id, "90d")
    assert installations.installation(store, installation_id).expires_at == start + timedelta(
        days=30 + 90
    )


def test_expired_installation_can_be_renewed_from_now(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app, "30d")
    clock.advance(timedelta(days=45))
    installations.expire(store, installation_id)
    assert installations.installation(store, installation_id).status is InstallationStatus.EXPIRED
    installations.renew(store, seller, installation_id, "30d")
    installation = installations.installation(store, installation_id)
    assert installation.status is InstallationStatus.ACTIVE
    assert installation.expires_at == clock.now() + timedelta(days=30)


def test_expiry_not_yet_swept_is_still_renewed_from_now(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app, "30d")
    clock.advance(timedelta(days=40))
    installations.renew(store, seller, installation_id, "30d")
    installation = installations.installation(store, installation_id)
    assert installation.expires_at == clock.now() + timedelta(days=30)
    assert installation.is_live(clock.now())


def test_cancel_is_final(store: Store) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    installations.cancel(store, seller, installation_id)
    assert installations.installation(store, installation_id).status is InstallationStatus.CANCELLED
    with pytest.raises(AlreadyCancelled):
        installations.renew(store, seller, installation_id, "30d")
    with pytest.raises(AlreadyCancelled):
        installations.cancel(store, seller, installation_id)


def test_one_active_installation_per_seller_and_app(store: Store) -> None:
    seller, app = f.seller(store), f.app(store)
    f.active_installation(store, seller, app)
    with pytest.raises(DuplicateInstallation):
        installations.install(store, seller, app, "30d", "me@shop.example.com", "+14155550101")
    other_seller = f.seller(store)
    assert f.active_installation(store, other_seller, app)


def test_after_cancel_the_app_can_be_installed_again(store: Store) -> None:
    seller, app = f.seller(store), f.app(store)
    first = f.active_installation(store, seller, app)
    installations.cancel(store, seller, first)
    second = f.active_installation(store, seller, app)
    assert second != first


def test_a_new_install_supersedes_a_pending_one(store: Store) -> None:
    seller, app = f.seller(store), f.app(store)
    pending = installations.install(
        store, seller, app, "30d", "me@shop.example.com", "+14155550101"
    ).id
    newer = installations.install(
        store, seller, app, "90d", "me@shop.example.com", "+14155550101"
    ).id
    old = installations.installation(store, pending)
    assert old.status is InstallationStatus.DECLINED and old.end_reason == "superseded"
    with pytest.raises(NotPendingAuthorization):
        installations.authorize(store, seller, pending)
    installations.authorize(store, seller, newer)


def test_authorization_lapses_after_thirty_minutes(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = installations.install(
        store, seller, app, "30d", "me@shop.example.com", "+14155550101"
    ).id
    clock.advance(timedelta(minutes=31))
    with pytest.raises(AuthorizationLapsed):
        installations.authorize(store, seller, installation_id)
    installations.lapse(store, installation_id)
    installation = installations.installation(store, installation_id)
    assert installation.status is InstallationStatus.DECLINED
    assert installation.end_reason == "lapsed"


def test_renewing_an_old_installation_superseded_by_a_new_one_is_refused(
    store: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    old = f.active_installation(store, seller, app, "30d")
    clock.advance(timedelta(days=31))
    installations.expire(store, old)
    f.active_installation(store, seller, app, "30d")
    with pytest.raises(NotRenewable):
        installations.renew(store, seller, old, "30d")


def test_another_sellers_installation_is_not_found(store: Store) -> None:
    seller, intruder, app = f.seller(store), f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    for command in (installations.cancel, installations.authorize, installations.decline):
        with pytest.raises(InstallationNotFound):
            command(store, intruder, installation_id)
    with pytest.raises(InstallationNotFound):
        installations.renew(store, intruder, installation_id, "30d")
    assert installations.installation(store, installation_id).status is InstallationStatus.ACTIVE


def test_developers_cannot_install_and_delisted_apps_cannot_be_installed(store: Store) -> None:
    developer = f.developer(store)
    app = f.app(store, developer)
    with pytest.raises(WrongRole):
        installations.install(store, developer, app, "30d", "me@shop.example.com", "+14155550101")
    seller = f.seller(store)
    existing = f.active_installation(store, seller, app)
    listings.delist_app(store, developer, app)
    with pytest.raises(AppDelisted):
        installations.install(
            store, f.seller(store), app, "30d", "me@shop.example.com", "+14155550101"
        )
    # Existing installations keep working until cancelled or expired.
    installations.renew(store, seller, existing, "30d")


def test_duration_must_be_offered_by_the_app(store: Store) -> None:
    seller, app = f.seller(store), f.app(store, durations=["30d", "365d"])
    with pytest.raises(InvalidDuration):
        installations.install(
            store, seller, app, "unlimited", "me@shop.example.com", "+14155550101"
        )


def test_failures_group_by_area_and_code_while_open(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    first_seen = clock.now()
    a = sync_events.record_sync_event(store, failure(installation_id, "e1", clock, ids=["o1"]))
    clock.advance(timedelta(minutes=5))
    b = sync_events.record_sync_event(
        store, failure(installation_id, "e2", clock, ids=["o2", "o1"])
    )
    c = sync_events.record_sync_event(
        store, failure(installation_id, "e3", clock, code="AUTH_EXPIRED")
    )
    d = sync_events.record_sync_event(
        store, failure(installation_id, "e4", clock, area="fulfillment")
    )
    assert a.incident_ids == b.incident_ids
    assert len({a.incident_ids[0], c.incident_ids[0], d.incident_ids[0]}) == 3
    incident = installations.installation(store, installation_id).incidents[a.incident_ids[0]]
    assert incident.count == 2
    assert incident.first_seen == first_seen
    assert incident.last_seen == clock.now()
    assert incident.object_ids == ["o1", "o2"]


def test_a_later_success_resolves_every_open_incident_of_its_area(
    store: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    orders = sync_events.record_sync_event(
        store, failure(installation_id, "e1", clock)
    ).incident_ids[0]
    other = sync_events.record_sync_event(
        store, failure(installation_id, "e2", clock, code="X")
    ).incident_ids[0]
    shipping = sync_events.record_sync_event(
        store, failure(installation_id, "e3", clock, area="fulfillment")
    )
    clock.advance(timedelta(seconds=1))
    resolved = sync_events.record_sync_event(store, success(installation_id, "e4", clock))
    assert sorted(resolved.incident_ids) == sorted([orders, other])
    incidents = installations.installation(store, installation_id).incidents
    assert incidents[orders].status is IncidentStatus.RESOLVED
    assert incidents[shipping.incident_ids[0]].status is IncidentStatus.OPEN
    # After resolution the same failure opens a new incident.
    again = sync_events.record_sync_event(
        store, failure(installation_id, "e5", clock)
    ).incident_ids[0]
    assert again != orders


def test_a_success_older_than_the_last_failure_resolves_nothing(
    store: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    stale = success(installation_id, "s0", clock)
    clock.advance(timedelta(seconds=5))
    sync_events.record_sync_event(store, failure(installation_id, "e1", clock))
    assert sync_events.record_sync_event(store, stale).incident_ids == []


def test_sync_events_are_idempotent_by_event_id(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    event = failure(installation_id, "same", clock)
    first = sync_events.record_sync_event(store, event)
    head = store.application.recorder.max_notification_id()
    again = sync_events.record_sync_event(store, event)
    batch = sync_events.record_sync_events(store, [event, event])
    assert again.duplicate and all(r.duplicate for r in batch)  # type: ignore[union-attr]
    assert store.application.recorder.max_notification_id() == head
    assert (
        installations.installation(store, installation_id).incidents[first.incident_ids[0]].count
        == 1
    )


def test_a_batch_applies_each_event_once_and_reports_refusals(
    store: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    live = f.active_installation(store, seller, app)
    cancelled = f.active_installation(store, f.seller(store), app)
    installations.cancel(store, installations.installation(store, cancelled).seller_id, cancelled)
    results = sync_events.record_sync_events(
        store,
        [
            failure(live, "b1", clock),
            failure(live, "b1", clock),
            failure(live, "b2", clock),
            failure(cancelled, "b3", clock),
        ],
    )
    assert isinstance(results[3], InstallationCancelled)
    assert results[1].duplicate  # type: ignore[union-attr]
    incident = next(iter(installations.installation(store, live).incidents.values()))
    assert incident.count == 2


def test_sync_events_for_cancelled_installations_are_refused(
    store: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    installations.cancel(store, seller, installation_id)
    with pytest.raises(InstallationCancelled):
        sync_events.record_sync_event(store, failure(installation_id, "e1", clock))


def test_seller_acknowledges_then_resolves_an_incident(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    incident_id = sync_events.record_sync_event(
        store, failure(installation_id, "e1", clock)
    ).incident_ids[0]
    installations.acknowledge_incident(store, seller, installation_id, incident_id)
    with pytest.raises(IncidentNotOpen):
        installations.acknowledge_incident(store, seller, installation_id, incident_id)
    # Acknowledged incidents still group new failures.
    sync_events.record_sync_event(store, failure(installation_id, "e2", clock))
    incident = installations.installation(store, installation_id).incidents[incident_id]
    assert incident.status is IncidentStatus.ACKNOWLEDGED and incident.count == 2
    installations.resolve_incident(store, seller, installation_id, incident_id)
    with pytest.raises(IncidentAlreadyResolved):
        installations.resolve_incident(store, seller, installation_id, incident_id)


def test_snapshots_of_busy_installations_load_the_same_state(
    store: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app, "90d")
    for n in range(230):
        clock.advance(timedelta(seconds=1))
        code = "A" if n % 3 else "B"
        sync_events.record_sync_event(
            store, failure(installation_id, f"e{n}", clock, code=code, ids=[f"o{n}"])
        )
        if n % 50 == 0:
            sync_events.record_sync_event(store, success(installation_id, f"s{n}", clock))
    open_ones = [
        i.id
        for i in installations.installation(store, installation_id).incidents.values()
        if i.status is IncidentStatus.OPEN
    ]
    installations.acknowledge_incident(store, seller, installation_id, open_ones[0])
    assert store.application.snapshots is not None
    assert list(store.application.snapshots.get(installation_id)), "expected snapshots to be taken"
    from_snapshot = installations.installation(store, installation_id)
    replayed = None
    for domain_event in store.application.events.get(installation_id):
        replayed = domain_event.mutate(replayed)
    assert replayed is not None
    assert replayed.__dict__ == from_snapshot.__dict__
    assert from_snapshot.status is InstallationStatus.ACTIVE
    assert all(isinstance(i.status, IncidentStatus) for i in from_snapshot.incidents.values())
    # Commands keep working on an installation loaded from a snapshot.
    installations.renew(store, seller, installation_id, "30d")


def test_a_snapshot_keeps_incidents_in_the_stored_form_and_apart_from_the_aggregate(
    store: Store, clock: FixedClock
) -> None:
    """Snapshots take incidents by a shallow copy (asdict was 40x slower): the stored form
    stays asdict's (the form older releases wrote and read), and later changes to the
    installation do not reach a snapshot already taken."""
    installation_id = f.active_installation(store, f.seller(store), f.app(store))
    for n in range(3):
        sync_events.record_sync_event(
            store, failure(installation_id, f"e{n}", clock, ids=[f"o{n}", "shared"])
        )
    installation = installations.installation(store, installation_id)
    snapshot = InstallationSnapshot.take(installation)
    assert snapshot.state["incidents"] == [
        {**asdict(incident), "status": incident.status.value}
        for incident in installation.incidents.values()
    ]
    kept = [dict(item, object_ids=list(item["object_ids"])) for item in snapshot.state["incidents"]]
    (incident,) = installation.incidents.values()
    incident.object_ids.append("later")
    incident.count += 1
    assert snapshot.state["incidents"] == kept


def test_a_redelivered_batch_applies_only_the_new_events(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    first = [failure(installation_id, f"r{n}", clock) for n in range(3)]
    sync_events.record_sync_events(store, first)
    redelivered = sync_events.record_sync_events(
        store, [*first, failure(installation_id, "r3", clock)]
    )
    assert [r.duplicate for r in redelivered] == [True, True, True, False]  # type: ignore[union-attr]
    (incident,) = installations.installation(store, installation_id).incidents.values()
    assert incident.count == 4


def test_a_cached_store_still_sees_what_other_writers_appended(
    store: Store, clock: FixedClock, settings: Settings
) -> None:
    cached = build_store(settings, clock=clock, aggregate_cache=100)
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    sync_events.record_sync_event(cached, failure(installation_id, "c1", clock))  # now in its cache
    installations.cancel(store, seller, installation_id)  # another writer
    with pytest.raises(InstallationCancelled):
        sync_events.record_sync_event(cached, failure(installation_id, "c2", clock))
    cached.close()
