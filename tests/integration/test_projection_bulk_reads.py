"""What makes catch-up and replay fast stays correct: bulk reads of what earlier steps wrote
(`Projection.prepare` + `Batch.get_many`), replay steps that do not wait for the disk, and
`appstore replay` split over processes."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.sql import cache_key

from application import installations as install_commands
from application.store import Store
from appstore import processes
from appstore.settings import ProjectorSettings, Settings
from domain.installation import Installation
from projections.batch import Batch
from projections.db import create_read_engine
from projections.projection import On, Projection, on
from projections.read_side import build_projector, snapshot
from projections.runner import Projector
from projections.webhook_deliveries import installations as webhook_installations
from tests import factories as f

WATCHED = (
    "catalog_installations",
    "catalog_apps",
    "my_apps_installations",
    "my_apps_apps",
    "incidents_installations",
    "webhook_installations",
    "webhook_subscriptions",
)


@contextmanager
def selects(projector: Projector) -> Iterator[Counter[str]]:
    """Counts the SELECT statements sent per table of WATCHED while the block runs."""
    seen: Counter[str] = Counter()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith("SELECT"):
            for table in WATCHED:
                if f"FROM {table.upper()}" in text:
                    seen[table] += 1

    sa.event.listen(projector.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(projector.engine, "before_cursor_execute", count)


def test_a_step_reads_the_rows_earlier_steps_wrote_in_one_round_trip_per_table(
    store: Store, database_url: str
) -> None:
    developer, seller = f.developer(store), f.seller(store)
    apps = [f.app(store, developer) for _ in range(12)]
    pending = [
        install_commands.install(store, seller, app_id, "30d", "ops@shop.example", "+1415555")
        for app_id in apps
    ]
    projector = build_projector(store, database_url)
    projector.catch_up()  # apps and installations written by earlier steps
    for outcome in pending:
        install_commands.authorize(store, seller, outcome.id)
    with selects(projector) as seen:
        applied = sum(projector.step(name).applied for name in projector.projections)
    assert applied == 12 * len(projector.projections)
    # One each (not one per installation, per app): 12 authorizations, 12 apps.
    assert seen and max(seen.values()) == 1, seen
    before = snapshot(projector)
    for name in projector.projections:
        projector.reset(name)
    projector.catch_up()
    assert snapshot(projector) == before  # what the bulk reads found is what replay builds
    projector.engine.dispose()


def test_get_many_remembers_missing_rows_and_reads_each_row_once(
    store: Store, database_url: str
) -> None:
    seller = f.seller(store)
    known = f.active_installation(store, seller, f.app(store))
    projector = build_projector(store, database_url)
    projector.catch_up()
    other = f.active_installation(store, seller, f.app(store))  # not projected yet
    with projector.engine.begin() as conn:
        batch = Batch(conn)
        found = batch.get_many(webhook_installations, [known, other, known])
        assert [row["installation_id"] for row in found] == [known]
        with selects(projector) as seen:
            assert batch.get(webhook_installations, known) is found[0]
            assert batch.get(webhook_installations, other) is None
            assert batch.get_many(webhook_installations, [other, known]) == found
        assert not seen  # all from the batch, no round trip
    projector.engine.dispose()


class _Probe(Projection):
    """Records the session's synchronous_commit inside each step."""

    name = "probe"
    seen: list[str] = []

    def handlers(self) -> Sequence[On[Any]]:
        return [on(Installation.Installed, self._installed)]

    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        self.seen.append(str(batch.conn.exec_driver_sql("SHOW synchronous_commit").scalar()))


@pytest.mark.postgres
class CountingStore:
    """The store, counting its `notifications` reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    def notifications(self, start: int, limit: int, **kwargs: Any) -> Sequence[Any]:
        self.reads += 1
        return self.store.notifications(start, limit, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_round_reads_the_new_events_once_for_every_projection(
    store: Store, database_url: str
) -> None:
    counting = CountingStore(store)
    projector = build_projector(counting, database_url)  # type: ignore[arg-type]
    projector.catch_up()
    seller = f.seller(store)
    installation = f.active_installation(store, seller, f.app(store))  # a short page
    counting.reads = 0
    assert projector.run_once() > 0
    assert counting.reads == 1  # not one per projection
    assert set(projector.positions().values()) == {store.head()}
    install_commands.cancel(store, seller, installation)  # the next round reads anew
    assert projector.run_once() == len(projector.projections) and counting.reads == 2
    assert set(projector.positions().values()) == {store.head()}
    projector.engine.dispose()


def test_projections_with_nothing_to_apply_move_on_together_in_one_transaction(
    store: Store, database_url: str
) -> None:
    projector = build_projector(store, database_url)
    seller = f.seller(store)
    pending = install_commands.install(
        store, seller, f.app(store), "30d", "ops@shop.example", "+1415555"
    )
    projector.catch_up()
    install_commands.decline(store, seller, pending.id)  # only my_apps takes a decline
    commits: list[object] = []

    def count(conn: Any) -> None:
        commits.append(conn)

    sa.event.listen(projector.engine, "commit", count)
    try:
        assert projector.run_once() == len(projector.projections)
    finally:
        sa.event.remove(projector.engine, "commit", count)
    assert len(commits) == 2  # the five others together, then my_apps' step
    assert set(projector.positions().values()) == {store.head()}
    before = snapshot(projector)
    for name in projector.projections:
        projector.reset(name)
    projector.catch_up()
    assert snapshot(projector) == before
    projector.engine.dispose()


@contextmanager
def statements_keyed() -> Iterator[list[object]]:
    """The statements SQLAlchemy computes a cache key for while the block runs (a
    statement built once computes it once: its first execution)."""
    keyed: list[object] = []
    original = cache_key.MemoizedHasCacheKey._generate_cache_key

    def counting(self: Any) -> Any:
        keyed.append(self)
        return original(self)

    cache_key.MemoizedHasCacheKey._generate_cache_key = counting  # type: ignore[method-assign]
    try:
        yield keyed
    finally:
        cache_key.MemoizedHasCacheKey._generate_cache_key = original  # type: ignore[method-assign]


def test_a_warm_projector_builds_no_statement_per_step(store: Store, database_url: str) -> None:
    projector = build_projector(store, database_url)
    seller, app_id = f.seller(store), f.app(store)

    def install_then_decline() -> None:
        pending = install_commands.install(
            store, seller, app_id, "30d", "ops@shop.example", "+1415555"
        )
        assert projector.run_once()
        install_commands.decline(store, seller, pending.id)
        assert projector.run_once()

    projector.catch_up()
    install_then_decline()  # the first steps build (and key) the statements
    with statements_keyed() as keyed:
        install_then_decline()
    assert [str(k) for k in keyed] == []
    projector.engine.dispose()


def test_only_replay_steps_commit_without_waiting_for_the_disk(postgres_url: str) -> None:
    from appstore.bootstrap import build_store

    store = build_store(Settings(database_url=postgres_url, fast_password_hashing=True))
    f.active_installation(store, f.seller(store), f.app(store))
    probe = _Probe()
    live = Projector(store, create_read_engine(postgres_url), [probe])
    live.setup()
    live.catch_up()
    replaying = Projector(store, create_read_engine(postgres_url), [probe])
    replaying.durable = False  # as `appstore replay` sets it
    replaying.reset("probe")
    replaying.catch_up()
    live.catch_up()  # nothing left; and the setting did not leak into other sessions
    with live.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    assert probe.seen == ["on", "off"]
    live.engine.dispose()
    replaying.engine.dispose()
    store.close()


@pytest.mark.postgres
def test_replay_split_over_two_processes_builds_what_the_live_projector_built(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from appstore.bootstrap import build_store

    settings = Settings(
        database_url=postgres_url,
        fast_password_hashing=True,
        projector=ProjectorSettings(replay_workers=2, replay_batch_size=7),
    )
    store = build_store(settings)
    developer, sellers = f.developer(store), [f.seller(store) for _ in range(3)]
    for n in range(8):
        app_id = f.app(store, developer, categories=[["connectors", "analytics"][n % 2]])
        f.active_installation(store, sellers[n % 3], app_id)
    projector = build_projector(store, postgres_url, batch_size=5)
    projector.catch_up()
    live = snapshot(projector)
    processes.replay(settings, None)
    assert "by 2 processes" in capsys.readouterr().err
    assert snapshot(projector) == live
    assert set(projector.positions().values()) == {store.head()}
    projector.engine.dispose()
    store.close()


def test_a_round_checks_out_one_connection_for_all_its_steps(
    store: Store, database_url: str
) -> None:
    """`catch_up` and `run_once` hold one pooled connection for their steps (each still a
    transaction of its own): a checkout (a ping on PostgreSQL) per round, not per step (a
    catch-up on PostgreSQL: one per lane, projections/lanes.py)."""
    developer, seller = f.developer(store), f.seller(store)
    for _ in range(4):
        app_id = f.app(store, developer)
        install_commands.install(store, seller, app_id, "30d", "ops@shop.example", "+1415555")
    projector = build_projector(store, database_url, batch_size=2)
    checkouts: list[object] = []
    commits: list[object] = []
    sa.event.listen(projector.engine, "checkout", lambda *a: checkouts.append(a))
    sa.event.listen(projector.engine, "commit", lambda conn: commits.append(conn))
    projector.catch_up()
    assert len(commits) > len(projector.projections)  # many steps, each committed ...
    lanes = projector.lanes if projector.engine.dialect.name == "postgresql" else 1
    assert len(checkouts) == lanes  # ... on one connection per lane
    assert projector.lag() == dict.fromkeys(projector.projections, 0)

    install_commands.install(
        store, seller, f.app(store, developer), "30d", "a@b.example", "+1415555"
    )
    checkouts.clear()
    commits.clear()
    assert projector.run_once() > 0
    assert len(commits) > 1
    assert len(checkouts) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # the read-ahead's only
def test_a_catch_up_on_postgres_reads_and_decodes_the_next_page_on_a_thread_of_its_own(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a catch-up applies one page, the next is read and decoded beside it
    (projections/log_pages.py); what it builds is what a projector without it builds."""
    developer, seller = f.developer(store), f.seller(store)
    for _ in range(6):
        app_id = f.app(store, developer)
        install_commands.install(store, seller, app_id, "30d", "ops@shop.example", "+1415555")
    readers: list[str] = []
    read = store.notifications

    def notifications(start: int, limit: int, **kwargs: Any) -> Any:
        readers.append(threading.current_thread().name)
        return read(start, limit, **kwargs)

    monkeypatch.setattr(store, "notifications", notifications)
    projector = build_projector(store, database_url, batch_size=3)
    projector.catch_up()
    ahead = [name for name in readers if name.startswith("projector-read-ahead")]
    assert ahead and len(ahead) < len(readers)  # the first page, and short ones, by the step
    assert not [t for t in threading.enumerate() if t.name.startswith("projector-read-ahead")]
    built = snapshot(projector)
    for name in projector.projections:
        projector.reset(name)
    projector.run_once()  # the same log, read without the read-ahead (run_once has none)
    while projector.run_once():
        pass
    assert snapshot(projector) == built


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_the_facet_counts_are_the_listed_apps_by_combination_however_the_log_is_batched(
    store: Store, database_url: str, batch_size: int
) -> None:
    """The catalog's facet counts are added up per step (one upsert of the step's changes,
    the empty combinations deleted only when a count went down): they stay a count of the
    listed apps by categories and platforms, however the steps cut the log."""
    from application import listings
    from projections.catalog import apps as catalog_apps
    from projections.catalog import facet_counts

    developer = f.developer(store)
    ids = [
        f.app(store, developer, categories=[category], platforms=[platform])
        for category, platform in [
            ("connectors", "shopify"),
            ("connectors", "shopify"),
            ("marketing", "amazon"),
            ("shipping-fulfillment", "ebay"),
        ]
    ]
    listings.update_app(store, developer, ids[0], {"categories": ["marketing"]})
    listings.delist_app(store, developer, ids[2])
    listings.delist_app(store, developer, ids[3])  # its combination is gone
    projector = build_projector(store, database_url, batch_size=batch_size)
    projector.catch_up()
    c = catalog_apps.c
    with projector.engine.connect() as conn:
        counted = conn.execute(
            sa.select(c.category_bits, c.platform_bits, sa.func.count())
            .where(c.delisted_at.is_(None))
            .group_by(c.category_bits, c.platform_bits)
        ).all()
        kept = conn.execute(sa.select(facet_counts)).all()
    assert sorted(tuple(r) for r in kept) == sorted(tuple(r) for r in counted)
    assert len(kept) == 2
