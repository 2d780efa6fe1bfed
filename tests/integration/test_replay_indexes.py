"""`appstore replay` on PostgreSQL drops the read models' secondary indexes and builds them
once at the end (`Projector.defer_indexes` / `build_indexes`): the indexes come back exactly
as declared, and a rebuild that dies without them is rebuilt from the log by the next setup."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from application.store import Store
from appstore import processes
from appstore.bootstrap import build_store
from appstore.settings import Settings
from projections.read_side import build_projector, snapshot
from projections.runner import Projector
from tests import factories as f

pytestmark = pytest.mark.postgres


def _indexes(projector: Projector) -> dict[str, str]:
    """Every index of the read models' tables: name → definition."""
    tables = [t.name for p in projector.projections.values() for t in p.tables]
    with projector.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename = ANY(:tables)"
            ),
            {"tables": tables},
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def _filled(url: str) -> Store:
    store = build_store(Settings(database_url=url, fast_password_hashing=True))
    developer, seller = f.developer(store), f.seller(store)
    for n in range(4):
        app_id = f.app(store, developer, categories=[["connectors", "analytics"][n % 2]])
        f.active_installation(store, seller, app_id)
    return store


def test_a_replay_builds_the_secondary_indexes_again_as_declared(postgres_url: str) -> None:
    store = _filled(postgres_url)
    projector = build_projector(store, postgres_url)
    projector.catch_up()
    live, declared = snapshot(projector), _indexes(projector)
    assert "catalog_apps_popular" in declared and "ix_my_apps_installations_app_id" in declared

    processes.replay(Settings(database_url=postgres_url), None)

    assert _indexes(projector) == declared
    assert snapshot(projector) == live
    again = build_projector(store, postgres_url)
    assert again.setup() == []  # remembered as built: nothing to rebuild
    again.engine.dispose()
    projector.engine.dispose()
    store.close()


def test_deferring_drops_only_what_enforces_nothing_and_building_restores_it(
    postgres_url: str,
) -> None:
    store = _filled(postgres_url)
    projector = build_projector(store, postgres_url, names=["catalog"])
    projector.catch_up()
    declared = _indexes(projector)

    statements = projector.defer_indexes("catalog")
    left = _indexes(projector)
    assert "catalog_apps_popular" not in left and "ix_catalog_apps_slug" not in left
    assert {"catalog_apps_pkey", "catalog_apps_seq_key"} <= left.keys()  # keys stay
    assert len(left) + len(statements) == len(declared)

    projector.build_indexes("catalog", statements)
    assert _indexes(projector) == declared
    projector.engine.dispose()
    store.close()


def test_a_rebuild_that_died_without_its_indexes_is_rebuilt_by_the_next_setup(
    postgres_url: str,
) -> None:
    store = _filled(postgres_url)
    projector = build_projector(store, postgres_url, names=["catalog"])
    projector.catch_up()
    declared, live = _indexes(projector), snapshot(projector)
    projector.defer_indexes("catalog")  # ... and the replay dies here
    projector.engine.dispose()

    restarted = build_projector(store, postgres_url, names=["catalog"])  # its setup rebuilds
    assert restarted.positions() == {"catalog": 0}  # rebuilt from position 0
    assert _indexes(restarted) == declared
    restarted.catch_up()
    assert snapshot(restarted) == live
    restarted.engine.dispose()
    store.close()
