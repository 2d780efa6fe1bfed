"""Catalog search at scale keeps its answers: the fast path (running facet counts, one
materialized match set) equals a plain reference on a generated catalog, on SQLite and
PostgreSQL, with a minimum rating and by rating too; the running counts stay exact through
updates, delistings and replays."""

from __future__ import annotations

import gc
import random
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st
from sqlalchemy.engine import Connection

from application import installations, listings, reviews
from application.store import Store
from appstore.settings import Settings
from domain import values as v
from projections import catalog_search, catalog_text
from projections.catalog import apps, facet_counts
from projections.catalog_prefixes import slots_of
from projections.catalog_search import CatalogPage, CatalogQuery
from projections.read_side import build_projector, snapshot
from projections.runner import Projector
from tests import factories as f
from tests.webhook_receiver import until

WORDS = ["label", "labels", "order", "orders", "ordering", "stock", "sync", "syncs", "ship"]
WORDS += ["shipping", "parcel", "print", "printer", "review", "refund", "tax", "loyalty"]
CATEGORIES, PLATFORMS = list(v.CATEGORIES), list(v.PLATFORMS)


def generate_catalog(store: Store, seed: int = 5) -> None:
    """About 90 apps over a small vocabulary (so matches overlap), then updates that move
    apps between categories and platforms, delistings, installs and cancellations, and
    reviews (edited, deleted, hidden) that give apps ratings, ties included."""
    rng = random.Random(seed)
    developer = f.developer(store)
    sellers = [f.seller(store) for _ in range(4)]
    listed: list[UUID] = []
    for n in range(90):
        listed.append(
            f.app(
                store,
                developer,
                name=f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {n}",
                tagline=" ".join(rng.sample(WORDS, 3)),
                description=" ".join(rng.choices(WORDS, k=12)),
                benefits=[" ".join(rng.sample(WORDS, 2))],
                categories=rng.sample(CATEGORIES, rng.randint(1, 2)),
                platforms=rng.sample(PLATFORMS, rng.randint(0, 3)),
            )
        )
    installed = []
    for app_id in rng.sample(listed, 30):
        for seller in rng.sample(sellers, rng.randint(1, 3)):
            installed.append((seller, f.active_installation(store, seller, app_id)))
    for seller, installation_id in rng.sample(installed, 8):
        installations.cancel(store, seller, installation_id)
    for seller, installation_id in rng.sample(installed, 2 * len(installed) // 3):
        app_id = installations.installation(store, installation_id).app_id
        review = reviews.post(store, seller, app_id, rng.choice([1, 3, 4, 4, 5, 5]), "Opinion")
        draw = rng.random()
        if draw < 0.15:
            reviews.edit(store, seller, app_id, review.id, rng.randint(1, 5), "Changed my mind")
        elif draw < 0.25:
            reviews.delete(store, seller, app_id, review.id)
        elif draw < 0.3:
            reviews.hide(store, review.id, "Off topic")
    for n, app_id in enumerate(rng.sample(listed, 20)):
        changes: dict[str, Any] = {"categories": rng.sample(CATEGORIES, rng.randint(1, 2))}
        if rng.random() < 0.5:
            changes["platforms"] = rng.sample(PLATFORMS, rng.randint(0, 2))
        if rng.random() < 0.3:
            changes["name"] = f"{rng.choice(WORDS).title()} Renamed {n}"
        listings.update_app(store, developer, app_id, changes)
    for app_id in rng.sample(listed, 12):
        listings.delist_app(store, developer, app_id)


@pytest.fixture
def projector(store: Store, settings: Settings) -> Iterator[Projector]:
    generate_catalog(store)
    # Small batches: the running counts see events of one app split across batches.
    projector = build_projector(store, settings.database_url, names=["catalog"], batch_size=13)
    projector.catch_up()
    yield projector
    projector.engine.dispose()


# --- the reference: the plain way ----------------------------------------------------------
def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.casefold())


def _has_every_term(row: Any, terms: list[str]) -> bool:
    """Every term is a prefix of a word of the app's document (name, tagline,
    description, benefits, categories and platforms as slugs and labels)."""
    d = row.details
    text = [d["name"], d["tagline"], d["description"], *d.get("benefits", [])]
    text += [*d["categories"], *d["platforms"]]
    text += [v.CATEGORIES[c] for c in d["categories"]] + [v.PLATFORMS[p] for p in d["platforms"]]
    words = _words(" ".join(text))
    return all(any(w.startswith(t) for w in words) for t in terms)


def _relevance(row: Any, terms: list[str]) -> tuple[Any, ...]:
    """Most query terms found in the name first, then most installed, name, id."""
    named = _words(row.details["name"])
    found = sum(any(w.startswith(t) for w in named) for t in terms)
    return (-found, -row.installs, row.name_key, row.id)


def reference_search(conn: sa.Connection, query: CatalogQuery) -> CatalogPage:
    """The same answer the plain way: every listed app read, the text matched and facets
    counted in Python, the page by one ORDER BY (relevance: sorted in Python)."""
    rows = conn.execute(sa.select(apps).where(apps.c.delisted_at.is_(None))).all()
    terms = query.terms
    if terms:
        rows = [r for r in rows if _has_every_term(r, terms)]
    if query.min_rating is not None:
        minimum = query.min_rating
        rows = [r for r in rows if r.rating_average is not None and r.rating_average >= minimum]

    def in_categories(r: Any) -> bool:
        return not query.categories or bool(set(r.categories) & set(query.categories))

    def in_platforms(r: Any) -> bool:
        return not query.platforms or bool(set(r.platforms) & set(query.platforms))

    facets = {
        "categories": {
            c: sum(c in r.categories for r in rows if in_platforms(r)) for c in CATEGORIES
        },
        "platforms": {
            p: sum(p in r.platforms for r in rows if in_categories(r)) for p in PLATFORMS
        },
    }
    chosen = [r.seq for r in rows if in_categories(r) and in_platforms(r)]
    start = (query.page - 1) * query.page_size
    if query.effective_sort == "relevant":
        ranked = sorted((r for r in rows if r.seq in chosen), key=lambda r: _relevance(r, terms))
        page = ranked[start : start + query.page_size]
        return CatalogPage(
            items=[catalog_search.item_of(r) for r in page],
            total=len(chosen),
            page=query.page,
            page_size=query.page_size,
            facets=facets,
        )
    order = {
        "popular": [apps.c.installs.desc(), apps.c.name_key, apps.c.id],
        "new": [apps.c.listed_at.desc(), apps.c.seq.desc()],
        "name": [apps.c.name_key, apps.c.id],
        "rating": [
            apps.c.rating_score.desc(),
            apps.c.rating_count.desc(),
            apps.c.name_key,
            apps.c.id,
        ],
    }[query.effective_sort]
    page = conn.execute(
        sa.select(apps)
        .where(apps.c.seq.in_(chosen))
        .order_by(*order)
        .limit(query.page_size)
        .offset((query.page - 1) * query.page_size)
    ).all()
    return CatalogPage(
        items=[catalog_search.item_of(r) for r in page],
        total=len(chosen),
        page=query.page,
        page_size=query.page_size,
        facets=facets,
    )


words = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(lambda w: w[: max(2, len(w) - 3)]),  # a prefix, as typed
    st.sampled_from([*CATEGORIES, *v.PLATFORMS.values(), "renamed", "nothing", "!!!"]),
)
queries = st.builds(
    CatalogQuery,
    q=st.one_of(st.none(), st.lists(words, min_size=1, max_size=2).map(" ".join)),
    categories=st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True).map(tuple),
    platforms=st.lists(st.sampled_from(PLATFORMS), max_size=2, unique=True).map(tuple),
    sort=st.sampled_from([None, "popular", "relevant", "new", "name", "rating"]),
    page=st.integers(1, 3),
    page_size=st.integers(1, 12),
    min_rating=st.one_of(st.none(), st.sampled_from([1, 2.5, 3, 3.5, 4, 4.2, 4.5, 5])),
)


def test_search_answers_equal_the_plain_reference(projector: Projector) -> None:
    with projector.engine.connect() as conn:

        @hypothesis.settings(max_examples=150, deadline=None, database=None)
        @hypothesis.given(queries)
        def same_answer(query: CatalogQuery) -> None:
            assert catalog_search.search(conn, query) == reference_search(conn, query)

        same_answer()


def test_searches_without_text_share_a_statement_per_shape(projector: Projector) -> None:
    """Built once with bound parameters: another filter value, page or minimum rating of
    the same shape reuses the statement and still answers for its own parameters."""
    shape = [
        CatalogQuery(categories=(CATEGORIES[0],), sort="new", min_rating=1),
        CatalogQuery(categories=(CATEGORIES[1],), sort="new", min_rating=4, page=2, page_size=3),
        CatalogQuery(categories=tuple(CATEGORIES[:3]), sort="new", min_rating=1, page_size=5),
    ]
    catalog_search._BROWSES.clear()
    with projector.engine.connect() as conn:
        pages = [catalog_search.search(conn, query) for query in shape]
        assert pages == [reference_search(conn, query) for query in shape]
        assert len({page.total for page in pages}) > 1  # answers differ with the parameters
        built = dict(catalog_search._BROWSES)
        assert len(built) == 1
        other = CatalogQuery(platforms=(PLATFORMS[0],), sort="name")
        assert catalog_search.search(conn, other) == reference_search(conn, other)
        assert len(catalog_search._BROWSES) == 2
        assert all(catalog_search._BROWSES[k] is v for k, v in built.items())


def test_the_generated_catalog_has_ratings_worth_ranking(projector: Projector) -> None:
    with projector.engine.connect() as conn:
        rated = conn.execute(
            sa.select(apps.c.rating_average, apps.c.rating_count).where(apps.c.rating_count > 0)
        ).all()
    assert len(rated) >= 15
    assert len({r.rating_average for r in rated}) >= 5 and max(r.rating_count for r in rated) > 1


def test_running_facet_counts_equal_a_count_of_the_listed_apps(projector: Projector) -> None:
    with projector.engine.connect() as conn:
        running = {
            (r.category_bits, r.platform_bits): r.apps
            for r in conn.execute(sa.select(facet_counts))
        }
        counted = conn.execute(
            sa.select(apps.c.category_bits, apps.c.platform_bits, sa.func.count())
            .where(apps.c.delisted_at.is_(None))
            .group_by(apps.c.category_bits, apps.c.platform_bits)
        )
        assert running == {(c, p): n for c, p, n in counted}
        assert sum(running.values()) == catalog_search.search(conn, CatalogQuery()).total == 78


def test_replay_in_other_batches_rebuilds_the_same_counts_and_search_rows(
    projector: Projector, store: Store, settings: Settings
) -> None:
    live = snapshot(projector)
    replayed = build_projector(store, settings.database_url, names=["catalog"], batch_size=1000)
    replayed.reset("catalog")
    replayed.catch_up()
    assert snapshot(replayed) == live
    replayed.engine.dispose()


def test_a_catalog_without_facet_counts_is_rebuilt_by_replay(
    projector: Projector, store: Store, settings: Settings
) -> None:
    live = snapshot(projector)
    with projector.engine.begin() as conn:  # as an earlier release left it
        facet_counts.drop(conn)
    upgraded = build_projector(store, settings.database_url, names=["catalog"])
    assert upgraded.positions() == {"catalog": 0}
    upgraded.catch_up()
    assert snapshot(upgraded) == live
    upgraded.engine.dispose()


def _as_seqs(index: catalog_text.TextIndex, bits: int) -> set[int]:
    return {index.apps[s].seq for s in slots_of(bits)}  # type: ignore[union-attr]


def test_text_search_follows_changes_made_after_its_index_was_built(
    projector: Projector, store: Store
) -> None:
    """The kept index applies the rows changed since it looked (new apps, renames,
    delistings, installs, reviews): answers equal the reference, and the index equals
    one built afresh."""
    with projector.engine.connect() as conn:
        catalog_search.search(conn, CatalogQuery(q="label"))  # builds the index
        kept = catalog_text.index_of(conn)
        built_at = kept.head
    generate_catalog(store, seed=11)
    projector.catch_up()
    with projector.engine.connect() as conn:

        @hypothesis.settings(max_examples=60, deadline=None, database=None)
        @hypothesis.given(queries.filter(lambda q: bool(q.terms)))
        def same_answer(query: CatalogQuery) -> None:
            assert catalog_search.search(conn, query) == reference_search(conn, query)

        same_answer()
        assert catalog_text.index_of(conn) is kept and kept.head > built_at
        fresh = catalog_text.TextIndex()
        fresh.refresh(conn)
    for term in {w[:n] for w in [*WORDS, "renamed", "zzz"] for n in (2, 3, len(w))}:
        assert _as_seqs(kept, kept.documents.match(term)) == _as_seqs(
            fresh, fresh.documents.match(term)
        )
        assert _as_seqs(kept, kept.names.match(term)) == _as_seqs(fresh, fresh.names.match(term))
    for facet, maps in fresh.facets.items():
        for slug, bits in maps.items():
            assert _as_seqs(kept, kept.facets[facet][slug]) == _as_seqs(fresh, bits)
    for sort, order in fresh.orders.items():
        assert [e[:-1] for e in kept.orders[sort]] == [e[:-1] for e in order]


def test_text_search_rebuilds_its_index_when_the_catalog_is_rebuilt(
    projector: Projector,
) -> None:
    """A smaller largest revision (a replay from 0 under way) builds the index again."""
    query = CatalogQuery(q="label", page_size=50)
    with projector.engine.connect() as conn:
        assert catalog_search.search(conn, query).total > 0
    projector.reset("catalog")
    with projector.engine.connect() as conn:
        assert catalog_search.search(conn, query).total == 0
    projector.catch_up()
    with projector.engine.connect() as conn:
        assert catalog_search.search(conn, query) == reference_search(conn, query)
        assert catalog_search.search(conn, query).total > 0


@contextmanager
def _serving(settings: Settings, store: Store, **options: Any) -> Iterator[Connection]:
    """The app started as serve starts it (its start-up thread running), and a connection
    to its read models."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from appstore.bootstrap import create_app

    app = create_app(settings, store=store, **options)
    engine = app.state.projector.engine
    try:
        with TestClient(app), engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def test_a_serving_process_builds_the_text_index_at_start_up(
    store: Store, settings: Settings
) -> None:
    """The first text search of a process does not pay for building the index (seconds at
    100,000 apps): serve builds it in the background as it starts."""
    f.app(store)
    with _serving(settings, store) as conn:
        index = catalog_text.index_of(conn)
        until(lambda: index.head >= 0)  # no search was made


def test_serve_freezes_its_start_up_heap_once_the_text_index_is_built(
    store: Store, settings: Settings
) -> None:
    """What start-up built is moved out of the garbage collector's sight (`gc.freeze`), or
    each full collection walks it again: 60-80 ms stalls every few seconds under load."""
    f.app(store)
    gc.unfreeze()
    try:
        with _serving(settings, store, freeze_heap=True) as conn:
            until(lambda: gc.get_freeze_count() > 0)
            assert catalog_text.index_of(conn).head >= 0  # frozen after the index was built
    finally:
        gc.unfreeze()
