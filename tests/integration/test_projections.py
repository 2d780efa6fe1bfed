"""Read models built from the log: catalog search, my apps, incidents, developer view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from application import installations, listings, sync_events
from application.expiry import sweep
from application.store import Store
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.incident import SyncEvent
from projections import catalog_search, developer_apps, incidents, my_apps, recently_viewed
from projections.catalog_search import CatalogQuery
from projections.due_installations import DueInstallations
from projections.read_side import build_projector, snapshot
from projections.runner import Projector
from tests import factories as f


@pytest.fixture
def projector(store: Store, settings: Settings) -> Iterator[Projector]:
    projector = build_projector(store, settings.database_url, batch_size=7)
    yield projector
    projector.engine.dispose()


def search(projector: Projector, **query: object) -> catalog_search.CatalogPage:
    projector.catch_up()
    with projector.engine.connect() as conn:
        return catalog_search.search(conn, CatalogQuery(**query))  # type: ignore[arg-type]


def names(page: catalog_search.CatalogPage) -> list[str]:
    return [item["name"] for item in page.items]


def failure(installation_id: UUID, event_id: str, when: datetime, **kw: object) -> SyncEvent:
    return SyncEvent(
        event_id=event_id,
        installation_id=installation_id,
        kind="failure",
        area=str(kw.get("area", "orders")),
        occurred_at=when,
        error_code=str(kw.get("error_code", "E_TIMEOUT")),
        message="the marketplace did not answer",
        object_ids=list(kw.get("object_ids", ["o-1"])),  # type: ignore[call-overload]
    )


# --- the runner -------------------------------------------------------------------------------
def test_catch_up_reaches_the_head_and_a_second_run_applies_nothing(
    store: Store, projector: Projector
) -> None:
    f.app(store)
    f.app(store)
    head = store.application.recorder.max_notification_id()
    assert projector.catch_up() > 0
    assert set(projector.positions().values()) == {head}
    before = snapshot(projector)
    assert projector.catch_up() == 0
    assert snapshot(projector) == before
    assert projector.lag() == dict.fromkeys(
        ["catalog", "my_apps", "incidents", "webhook_deliveries", "notifications", "reviews"], 0
    )


def test_a_failing_batch_rolls_back_rows_and_position(
    store: Store, projector: Projector, monkeypatch: pytest.MonkeyPatch
) -> None:
    f.app(store)
    projector.catch_up()
    before, positions = snapshot(projector), projector.positions()
    f.app(store, name="Crash Test")
    crashing = projector.projections["catalog"]
    topic_handlers = projector._topics["catalog"]

    def boom(*args: object) -> None:
        raise RuntimeError("crash in the middle of a batch")

    for topic in list(topic_handlers):
        if topic.endswith("AppListing.Listed"):
            monkeypatch.setitem(topic_handlers, topic, boom)
    with pytest.raises(RuntimeError):
        projector.step(crashing.name)
    assert projector.positions()["catalog"] == positions["catalog"]
    assert snapshot(projector)["catalog_apps"] == before["catalog_apps"]
    monkeypatch.undo()
    projector.catch_up()
    assert "Crash Test" in names(search(projector, q="crash"))


def test_replay_rebuilds_the_same_read_models(store: Store, projector: Projector) -> None:
    seller = f.seller(store)
    app_id = f.app(store)
    f.active_installation(store, seller, app_id)
    projector.catch_up()
    live = snapshot(projector)
    for name in projector.projections:
        projector.reset(name)
    assert projector.positions() == dict.fromkeys(
        ["catalog", "my_apps", "incidents", "webhook_deliveries", "notifications", "reviews"], 0
    )
    projector.catch_up()
    assert snapshot(projector) == live


# --- catalog ------------------------------------------------------------------------------------
def test_search_ranks_name_matches_above_description_matches(
    store: Store, projector: Projector
) -> None:
    dev = f.developer(store)
    f.app(store, dev, name="Label Printer Pro", tagline="Print shipping labels")
    f.app(
        store,
        dev,
        name="Order Hub",
        description="Syncs orders; also prints a label for each parcel.",
    )
    f.app(store, dev, name="Stock Keeper", tagline="Inventory counts")
    page = search(projector, q="label")
    assert names(page) == ["Label Printer Pro", "Order Hub"]
    assert page.total == 2


def test_search_matches_prefixes_benefits_categories_and_platforms(
    store: Store, projector: Projector
) -> None:
    dev = f.developer(store)
    plain = {"description": "Does one thing well.", "tagline": "A tool"}
    f.app(
        store,
        dev,
        name="Alpha",
        benefits=["Automatic tracking upload"],
        platforms=["etsy"],
        **plain,
    )
    f.app(
        store,
        dev,
        **plain,
        name="Beta",
        benefits=["Bulk edit"],
        categories=["print-on-demand"],
        platforms=["walmart"],
    )
    assert names(search(projector, q="track")) == ["Alpha"]
    assert names(search(projector, q="etsy")) == ["Alpha"]
    assert names(search(projector, q="print on demand")) == ["Beta"]
    assert names(search(projector, q="walmart bulk")) == ["Beta"]
    assert names(search(projector, q="walmart etsy")) == []
    # punctuation only: no words to search for, so everything (popular first)
    assert search(projector, q="!!!").total == 2


def test_sorts_popular_new_and_name(store: Store, projector: Projector, clock: FixedClock) -> None:
    dev = f.developer(store)
    zeta = f.app(store, dev, name="zeta")
    clock.advance(timedelta(days=1))
    f.app(store, dev, name="Alpha")
    clock.advance(timedelta(days=1))
    mid = f.app(store, dev, name="Mid")
    for _ in range(2):
        f.active_installation(store, f.seller(store), zeta)
    f.active_installation(store, f.seller(store), mid)
    assert names(search(projector)) == ["zeta", "Mid", "Alpha"]  # popular by default
    assert names(search(projector, sort="popular")) == ["zeta", "Mid", "Alpha"]
    assert names(search(projector, sort="new")) == ["Mid", "Alpha", "zeta"]
    assert names(search(projector, sort="name")) == ["Alpha", "Mid", "zeta"]
    # relevant without words falls back to popular
    assert names(search(projector, sort="relevant")) == ["zeta", "Mid", "Alpha"]
    assert [i["installs"] for i in search(projector).items] == [2, 1, 0]


def test_installs_count_only_active_installations(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    app_id = f.app(store)
    sellers = [f.seller(store) for _ in range(3)]
    first = f.active_installation(store, sellers[0], app_id)
    f.active_installation(store, sellers[1], app_id, duration="90d")
    installations.install(
        store, sellers[2], app_id, "30d", "a@shop.example.com", "+14155550123"
    )  # pending
    assert search(projector).items[0]["installs"] == 2
    installations.cancel(store, sellers[0], first)
    assert search(projector).items[0]["installs"] == 1
    clock.advance(timedelta(days=31))
    sweep(store, DueInstallations(projector.engine))
    assert search(projector).items[0]["installs"] == 1  # the 90d one is still active
    clock.advance(timedelta(days=60))
    sweep(store, DueInstallations(projector.engine))
    assert search(projector).items[0]["installs"] == 0


def test_filters_accept_several_values_and_facets_count_under_the_query(
    store: Store, projector: Projector
) -> None:
    dev = f.developer(store)
    plain = {"description": "Does one thing well.", "tagline": "A tool"}
    f.app(store, dev, name="A", categories=["connectors"], platforms=["shopify"], **plain)
    f.app(store, dev, name="B", categories=["shipping-fulfillment"], platforms=["amazon"], **plain)
    f.app(
        store, dev, name="C", categories=["connectors", "analytics"], platforms=["amazon"], **plain
    )
    f.app(store, dev, name="D Sync", categories=["marketing"], platforms=["ebay"], **plain)

    assert names(search(projector, categories=("connectors",), sort="name")) == ["A", "C"]
    both = search(projector, categories=("connectors", "shipping-fulfillment"), sort="name")
    assert names(both) == ["A", "B", "C"]
    page = search(projector, categories=("connectors",), platforms=("amazon",))
    assert names(page) == ["C"]
    # category counts apply the platform filter; platform counts apply the category filter
    assert page.facets["categories"]["connectors"] == 1
    assert page.facets["categories"]["shipping-fulfillment"] == 1
    assert page.facets["categories"]["marketing"] == 0
    assert page.facets["platforms"]["shopify"] == 1
    assert page.facets["platforms"]["amazon"] == 1
    assert page.facets["platforms"]["ebay"] == 0
    # facets follow the text query
    synced = search(projector, q="sync")
    assert synced.facets["categories"]["marketing"] == 1
    assert sum(synced.facets["platforms"].values()) == 1


@pytest.mark.parametrize(
    ("page", "page_size", "expected"),
    [(1, 2, ["A1", "A2"]), (3, 2, ["A5"]), (4, 2, []), (1, 5, ["A1", "A2", "A3", "A4", "A5"])],
)
def test_pagination_boundaries(
    store: Store, projector: Projector, page: int, page_size: int, expected: list[str]
) -> None:
    dev = f.developer(store)
    for n in range(1, 6):
        f.app(store, dev, name=f"A{n}")
    result = search(projector, sort="name", page=page, page_size=page_size)
    assert names(result) == expected
    assert result.total == 5


def test_updates_reindex_and_delisted_apps_disappear(store: Store, projector: Projector) -> None:
    dev = f.developer(store)
    app_id = f.app(store, dev, name="Old Name")
    other = f.app(store, dev, name="Other")
    listings.update_app(store, dev, app_id, {"name": "Fresh Name", "categories": ["analytics"]})
    assert names(search(projector, q="fresh")) == ["Fresh Name"]
    assert names(search(projector, q="old")) == []
    assert search(projector, categories=("analytics",)).total == 1
    listings.delist_app(store, dev, app_id)
    assert names(search(projector)) == ["Other"]
    assert search(projector).facets["categories"]["analytics"] == 0
    with projector.engine.connect() as conn:
        assert catalog_search.find_app(conn, str(app_id)) is None
        assert catalog_search.find_app(conn, "fresh-name") is None
        assert catalog_search.find_app(conn, str(other)) is not None
        assert all(r["id"] != app_id for r in catalog_search.related(conn, other))


def test_related_apps_share_a_category_or_platform_and_exclude_itself(
    store: Store, projector: Projector
) -> None:
    dev = f.developer(store)
    me = f.app(store, dev, name="Me", categories=["connectors"], platforms=["etsy"])
    f.app(store, dev, name="Same Category", categories=["connectors"], platforms=["wix"])
    f.app(store, dev, name="Same Platform", categories=["marketing"], platforms=["etsy"])
    f.app(store, dev, name="Unrelated", categories=["analytics"], platforms=["magento"])
    projector.catch_up()
    with projector.engine.connect() as conn:
        related = [r["name"] for r in catalog_search.related(conn, me)]
    assert related == ["Same Category", "Same Platform"]


def test_related_statements_are_each_calls_own(store: Store, projector: Projector) -> None:
    """The related-apps statements are built once: the app, its bits and the limit are
    bound per call (a second app gets its own tiers, the limit spans tiers)."""
    dev = f.developer(store)
    one = f.app(store, dev, name="One", categories=["connectors"], platforms=["etsy"])
    two = f.app(store, dev, name="Two", categories=["analytics"], platforms=["wix"])
    f.app(store, dev, name="Both Like One", categories=["connectors"], platforms=["etsy"])
    f.app(store, dev, name="Category Of One", categories=["connectors"], platforms=["magento"])
    f.app(store, dev, name="Like Two", categories=["analytics"], platforms=["wix"])
    projector.catch_up()
    with projector.engine.connect() as conn:
        assert [r["name"] for r in catalog_search.related(conn, one, limit=2)] == [
            "Both Like One",
            "Category Of One",
        ]
        assert [r["name"] for r in catalog_search.related(conn, one, limit=1)] == ["Both Like One"]
        assert [r["name"] for r in catalog_search.related(conn, two)] == ["Like Two"]


def test_recently_viewed_is_most_recent_first_deduplicated_and_bounded(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    dev, seller = f.developer(store), f.seller(store)
    app_ids = [f.app(store, dev, name=f"App {n}") for n in range(recently_viewed.KEEP + 3)]
    projector.catch_up()
    for app_id in [*app_ids, app_ids[0]]:
        clock.advance(timedelta(seconds=1))
        recently_viewed.remember(projector.engine, seller, app_id, clock.now())
    with projector.engine.connect() as conn:
        viewed = [v["id"] for v in recently_viewed.recently_viewed(conn, seller)]
        other = recently_viewed.recently_viewed(conn, f.seller(store))
    assert viewed[0] == app_ids[0]
    assert len(viewed) == recently_viewed.KEEP == len(set(viewed))
    assert viewed[1] == app_ids[-1]
    assert other == []


# --- my apps --------------------------------------------------------------------------------
def my(projector: Projector, seller: UUID, now: datetime, status: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    projector.catch_up()
    with projector.engine.connect() as conn:
        return my_apps.my_apps(conn, seller, now, status=status)[0]


def test_my_apps_status_expiring_expired_and_days_left(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    seller = f.seller(store)
    short = f.active_installation(store, seller, f.app(store, name="Short"), "30d")
    forever = f.active_installation(store, seller, f.app(store, name="Forever"), "unlimited")
    items = my(projector, seller, clock.now())
    assert [(i["app"]["name"], i["status"], i["days_left"]) for i in items] == [
        ("Short", "active", 30),
        ("Forever", "active", None),
    ]
    clock.advance(timedelta(days=20, hours=1))
    assert my(projector, seller, clock.now(), "expiring")[0]["installation_id"] == short
    assert my(projector, seller, clock.now(), "expiring")[0]["days_left"] == 10
    clock.advance(timedelta(days=10))
    # past expiry: shown expired even before the sweeper recorded it
    assert [i["installation_id"] for i in my(projector, seller, clock.now(), "expired")] == [short]
    result = sweep(store, DueInstallations(projector.engine))
    assert (result.expired, result.lapsed) == (1, 0)
    assert installations.installation(store, short).status.value == "expired"
    assert [i["installation_id"] for i in my(projector, seller, clock.now(), "active")] == [forever]
    installations.renew(store, seller, short, "90d")
    renewed = my(projector, seller, clock.now(), "active")
    assert {i["installation_id"] for i in renewed} == {short, forever}


def test_my_apps_pages_each_seller_apart_at_any_time(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    """The my-apps statements are built once with bound parameters: seller, time, status,
    page and page size are each call's own."""
    seller, other = f.seller(store), f.seller(store)
    ids = [f.active_installation(store, seller, f.app(store), f"{d}d") for d in (30, 90, 365)]
    f.active_installation(store, other, f.app(store), "30d")
    projector.catch_up()
    with projector.engine.connect() as conn:
        first, total = my_apps.my_apps(conn, seller, clock.now(), page=1, page_size=2)
        second, _ = my_apps.my_apps(conn, seller, clock.now(), page=2, page_size=2)
        later, later_total = my_apps.my_apps(
            conn, seller, clock.now() + timedelta(days=80), status="expiring"
        )
        theirs, their_total = my_apps.my_apps(conn, other, clock.now(), status="active")
    assert total == 3 and [i["installation_id"] for i in first + second] == ids
    assert (later_total, [i["installation_id"] for i in later]) == (1, [ids[1]])
    assert their_total == 1 and theirs[0]["installation_id"] not in ids


def test_my_apps_cancelled_and_lapsed_pending(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    seller = f.seller(store)
    app_id = f.app(store)
    installation = f.active_installation(store, seller, app_id)
    installations.cancel(store, seller, installation)
    pending = installations.install(
        store, seller, f.app(store), "30d", "a@shop.example.com", "+14155550123"
    ).id
    assert my(projector, seller, clock.now(), "cancelled")[0]["installation_id"] == installation
    assert my(projector, seller, clock.now(), "pending_authorization")[0]["installation_id"] == (
        pending
    )
    clock.advance(timedelta(hours=1))
    assert my(projector, seller, clock.now(), "declined")[0]["installation_id"] == pending
    assert sweep(store, DueInstallations(projector.engine)).lapsed == 1
    assert {i["status"] for i in my(projector, seller, clock.now())} == {"cancelled"}


def test_developer_view_hides_seller_data_of_cancelled_installations(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    dev = f.developer(store)
    app_id = f.app(store, dev)
    kept = f.active_installation(store, f.seller(store), app_id)
    seller = f.seller(store)
    gone = f.active_installation(store, seller, app_id)
    installations.cancel(store, seller, gone)
    f.active_installation(store, f.seller(store), f.app(store))  # another developer's app
    projector.catch_up()
    with projector.engine.connect() as conn:
        items, total = developer_apps.developer_installations(conn, dev, clock.now())
    assert total == 2
    by_id = {i["installation_id"]: i for i in items}
    assert by_id[gone]["seller"] is None
    assert by_id[kept]["seller"]["contact_email"] == "ops@shop.example.com"


# --- incidents ------------------------------------------------------------------------------
def test_incidents_group_recur_acknowledge_and_resolve(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    seller = f.seller(store)
    installation = f.active_installation(store, seller, f.app(store))
    t0 = clock.now()
    sync_events.record_sync_event(store, failure(installation, "e1", t0, object_ids=["o-1"]))
    sync_events.record_sync_event(
        store, failure(installation, "e2", t0 + timedelta(minutes=5), object_ids=["o-2"])
    )
    sync_events.record_sync_event(
        store, failure(installation, "e3", t0, area="inventory", error_code="E_SKU")
    )
    projector.catch_up()
    with projector.engine.connect() as conn:
        items, total = incidents.seller_incidents(conn, seller, status="open")
        assert total == 2
        orders = next(i for i in items if i["area"] == "orders")
        assert (orders["count"], orders["object_ids"]) == (2, ["o-1", "o-2"])
        assert (orders["first_seen"], orders["last_seen"]) == (t0, t0 + timedelta(minutes=5))
        assert incidents.seller_incidents(conn, f.seller(store))[1] == 0
    installations.acknowledge_incident(store, seller, installation, orders["id"])
    sync_events.record_sync_event(
        store, SyncEvent("e4", installation, "success", "orders", t0 + timedelta(minutes=9))
    )
    projector.catch_up()
    with projector.engine.connect() as conn:
        resolved = incidents.seller_incidents(conn, seller, status="resolved")[0]
        assert [i["id"] for i in resolved] == [orders["id"]]
        assert resolved[0]["acknowledged_at"] == clock.now()
        assert my_apps.my_apps(conn, seller, clock.now())[0][0]["open_incidents"] == 1
        assert incidents.seller_incidents(conn, seller, installation_id=installation)[1] == 2


def test_times_are_utc(store: Store, projector: Projector) -> None:
    f.app(store)
    item = search(projector).items[0]
    assert item["listed_at"] == datetime(2026, 1, 1, tzinfo=UTC)


# --- the pages' queries -----------------------------------------------------------------------
def test_status_counts_and_the_last_contact_of_a_seller(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    seller = f.seller(store)
    f.active_installation(store, seller, f.app(store), "unlimited")
    cancelled = f.active_installation(store, seller, f.app(store), "30d")
    installations.cancel(store, seller, cancelled)
    clock.advance(timedelta(minutes=1))
    installations.install(
        store, seller, f.app(store), "30d", "Late@Shop.example.com", "+1 415 555 0199"
    )
    projector.catch_up()
    with projector.engine.connect() as conn:
        assert my_apps.status_counts(conn, seller, clock.now()) == {
            "active": 1,
            "cancelled": 1,
            "pending_authorization": 1,
        }
        assert my_apps.last_contact(conn, seller) == ("late@shop.example.com", "+14155550199")
        assert my_apps.last_contact(conn, f.seller(store)) is None


def test_a_developers_apps_and_only_their_incidents(
    store: Store, projector: Projector, clock: FixedClock
) -> None:
    dev, rival = f.developer(store), f.developer(store)
    mine = f.app(store, dev, name="Beta Mine")
    quiet = f.app(store, dev, name="Alpha Quiet")
    theirs = f.app(store, rival)
    live = f.active_installation(store, f.seller(store), mine)
    ended = f.active_installation(store, f.seller(store), mine)
    installations.cancel(store, installations.installation(store, ended).seller_id, ended)
    other = f.active_installation(store, f.seller(store), theirs)
    sync_events.record_sync_event(store, failure(live, "m1", clock.now()))
    sync_events.record_sync_event(store, failure(other, "t1", clock.now()))
    projector.catch_up()
    with projector.engine.connect() as conn:
        apps, total = developer_apps.developer_apps(conn, dev, clock.now())
        assert total == 2
        assert [(a["name"], a["live"], a["installations"]) for a in apps] == [
            ("Alpha Quiet", 0, 0),
            ("Beta Mine", 1, 2),
        ]
        second, _ = developer_apps.developer_apps(conn, dev, clock.now(), page=2, page_size=1)
        assert [a["name"] for a in second] == ["Beta Mine"]
        assert [a["id"] for a in developer_apps.developer_app_names(conn, dev)] == [quiet, mine]
        found, total = developer_apps.developer_incidents(conn, dev)
        assert total == 1 and [i["installation_id"] for i in found] == [live]
        assert found[0]["app_name"] == "Beta Mine"
        assert developer_apps.developer_incidents(conn, dev, app_id=quiet) == ([], 0)
        assert developer_apps.developer_incidents(conn, dev, status="resolved") == ([], 0)
        assert developer_apps.developer_incidents(conn, rival)[0][0]["installation_id"] == other
