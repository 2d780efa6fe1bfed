"""The `appstore` CLI: demo catalog, audit show, audit export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from application.store import Store
from appstore.bootstrap import build_store
from appstore.cli import cli
from appstore.demo_listings import demo_listings, demo_name
from appstore.settings import Settings, get_settings
from domain import values as v
from domain.app_listing import validate_listing
from projections import catalog, catalog_search
from projections.read_side import build_projector
from projections.reviews import reviews
from tests import factories as f


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("APPSTORE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("APPSTORE_FAST_PASSWORD_HASHING", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_demo_listings_cover_every_category_and_platform_and_are_valid() -> None:
    listings = demo_listings(72)
    assert len({item["name"] for item in listings}) == 72
    assert {c for item in listings for c in item["categories"]} == set(v.CATEGORIES)
    assert {p for item in listings for p in item["platforms"]} == set(v.PLATFORMS)
    for item in listings:
        validate_listing(item, partial=False)


def test_demo_names_stay_unique_far_past_the_brand_names() -> None:
    names = [demo_name(n) for n in range(60_000)]
    slugs = {v.slugify(name) for name in names}
    assert len(set(names)) == len(slugs) == 60_000
    assert max(len(slug) for slug in slugs) < 64  # never cut short, so never merged
    for item in demo_listings(3, start=30_000):
        validate_listing(item, partial=False)


def listed_apps(store: Store) -> list[object]:
    return [n for n in store.notifications(1, store.head()) if n.topic.endswith("Listed")]


def test_demo_adds_apps_to_a_store_that_has_some(env: Settings) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--apps", "300"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli, ["demo", "--apps", "250"])
    assert again.exit_code == 0, again.output
    assert "250 apps added (550 demo apps in all)" in again.output.replace("\n", " ")
    store = build_store(env)
    assert len(listed_apps(store)) == 550
    projector = build_projector(store, env.database_url, names=["catalog"])
    projector.catch_up()
    with projector.engine.connect() as conn:
        page = catalog_search.search(conn, catalog_search.CatalogQuery(page_size=1))
        assert page.total == 550
        assert all(page.facets["categories"].values())
        assert all(page.facets["platforms"].values())
        slugs = conn.execute(sa.select(sa.func.count(sa.distinct(catalog.apps.c.slug)))).scalar()
        assert slugs == 550


def test_demo_apps_are_the_events_a_listing_appends(env: Settings) -> None:
    store = build_store(env)
    f.app(store)
    by_command = [n.topic for n in store.application.recorder.select_notifications(1, 10)][-2:]
    assert CliRunner().invoke(cli, ["demo", "--apps", "60"]).exit_code == 0
    head = store.application.recorder.max_notification_id()
    topics = {n.topic for n in store.application.recorder.select_notifications(1, head)}
    assert set(by_command) <= topics
    assert {t for t in topics if "AppListing" in t or "SlugClaim" in t} == set(by_command)


def test_demo_steps_over_a_slug_listed_by_hand(env: Settings) -> None:
    store = build_store(env)
    assert CliRunner().invoke(cli, ["demo", "--apps", "60"]).exit_code == 0
    f.app(store, name=demo_name(62))  # the name the next demo run would take third
    result = CliRunner().invoke(cli, ["demo", "--apps", "5"])
    assert result.exit_code == 0, result.output
    assert len(listed_apps(store)) == 60 + 1 + 5


def test_demo_loads_once_and_audit_reads_it_back(env: Settings) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--if-empty", "--apps", "60"])
    assert result.exit_code == 0, result.output
    store = build_store(env)
    head = store.application.recorder.max_notification_id()
    apps = [
        n
        for n in store.application.recorder.select_notifications(1, head)
        if n.topic.endswith("Listed")
    ]
    assert len(apps) == 60
    again = runner.invoke(cli, ["demo", "--if-empty"])
    assert again.exit_code == 0
    assert store.application.recorder.max_notification_id() == head

    shown = runner.invoke(cli, ["audit", "show", str(apps[0].originator_id)])
    assert shown.exit_code == 0, shown.output
    assert "AppListing.Listed" in shown.output

    exported = runner.invoke(cli, ["audit", "export", "--since", str(head - 5)])
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["position"] for line in lines] == list(range(head - 4, head + 1))
    assert {"aggregate_id", "version", "event_type", "timestamp", "payload"} <= set(lines[0])


def test_audit_show_of_an_unknown_id_fails_clearly(env: Settings) -> None:
    result = CliRunner().invoke(cli, ["audit", "show", "not-a-uuid"])
    assert result.exit_code == 2


def test_audit_export_redacts_hashes(env: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["demo", "--apps", "60"]).exit_code == 0
    exported = runner.invoke(cli, ["audit", "export"]).stdout
    assert "$argon2" not in exported
    registered = next(
        json.loads(line) for line in exported.splitlines() if "Account.Registered" in line
    )
    assert registered["payload"]["password_hash"] == "<redacted>"


def test_demo_reviews_spread_so_sort_by_rating_shows_something(env: Settings) -> None:
    assert CliRunner().invoke(cli, ["demo", "--apps", "60"]).exit_code == 0
    store = build_store(env)
    projector = build_projector(store, env.database_url, names=["catalog", "reviews"])
    projector.catch_up()
    with projector.engine.connect() as conn:
        top = catalog_search.search(
            conn, catalog_search.CatalogQuery(sort="rating", page_size=60)
        ).items
        rated = [item["rating"] for item in top if item["rating"]["count"]]
        assert len(rated) >= 30
        averages = [r["average"] for r in rated]
        assert max(averages) - min(averages) >= 2  # good apps and poor ones
        assert sum(r["count"] for r in rated) >= 100 and min(r["count"] for r in rated) <= 2
        # Ranked by the Bayesian score: the top app has more than a lucky review or two.
        assert top[0]["rating"]["count"] >= 3
        replies = conn.execute(sa.select(sa.func.count()).where(reviews.c.reply_body.is_not(None)))
        assert replies.scalar_one() > 0
