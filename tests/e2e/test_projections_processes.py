"""The read side's processes: replay, migrate, expire (as the CLI runs them)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from application import installations
from application.expiry import sweep
from application.store import Store
from appstore import processes
from appstore.bootstrap import app_from_environment, build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from projections.db import create_read_engine
from projections.due_installations import DueInstallations
from projections.read_side import all_projections, build_projector, snapshot
from tests import factories as f


def test_replay_rebuilds_every_read_model_to_the_same_rows(
    store: Store, settings: Settings
) -> None:
    seller = f.seller(store)
    f.active_installation(store, seller, f.app(store))
    projector = build_projector(store, settings.database_url)
    projector.catch_up()
    live = snapshot(projector)
    processes.replay(settings, None)
    assert snapshot(projector) == live
    processes.replay(settings, "catalog")
    assert snapshot(projector) == live
    assert projector.lag() == dict.fromkeys(
        ["catalog", "my_apps", "incidents", "webhook_deliveries", "notifications", "reviews"], 0
    )


def test_replay_of_an_unknown_projection_exits_with_a_message(settings: Settings) -> None:
    with pytest.raises(SystemExit) as exit_:
        processes.replay(settings, "nope")
    assert exit_.value.code == 2


def _schema(engine: sa.Engine) -> dict[str, tuple[list[str], list[str]]]:
    """Every table with its columns and its indexes."""
    inspector = sa.inspect(engine)
    return {
        table: (
            [c["name"] for c in inspector.get_columns(table)],
            sorted(str(i["name"]) for i in inspector.get_indexes(table)),
        )
        for table in inspector.get_table_names()
    }


def test_migrate_creates_every_table_and_a_second_run_changes_nothing(
    settings: Settings,
) -> None:
    engine = create_read_engine(settings.database_url)
    assert _schema(engine) == {}  # a fresh database
    processes.migrate(settings)
    schema = _schema(engine)
    events = "stored_events" if engine.dialect.name == "sqlite" else "appstore_events"
    read_models = {t.name for p in all_projections() for t in p.tables}
    assert {events, "projection_tracking", "projection_schema", *read_models} <= set(schema)

    store = build_store(settings)
    f.active_installation(store, f.seller(store), f.app(store))
    projector = build_projector(store, settings.database_url, setup=False)
    names = [p.name for p in all_projections()]
    assert projector.positions() == dict.fromkeys(names, 0)
    projector.catch_up()
    head, rows = store.head(), snapshot(projector)
    assert rows["catalog_apps"] and rows["my_apps_installations"]

    processes.migrate(settings)  # again, over a store in use: no table, row or position lost
    assert _schema(engine) == schema
    assert store.head() == head
    assert projector.positions() == dict.fromkeys(names, head)
    assert snapshot(projector) == rows
    projector.engine.dispose()
    engine.dispose()
    store.close()


def test_sweep_expires_only_what_is_due(
    store: Store, settings: Settings, clock: FixedClock
) -> None:
    seller = f.seller(store)
    short = f.active_installation(store, seller, f.app(store), "30d")
    f.active_installation(store, seller, f.app(store), "unlimited")
    projector = build_projector(store, settings.database_url)
    projector.catch_up()
    assert sweep(store, DueInstallations(projector.engine)).expired == 0
    clock.advance(timedelta(days=30))
    assert sweep(store, DueInstallations(projector.engine)).expired == 1
    assert installations.installation(store, short).status.value == "expired"
    projector.catch_up()
    assert sweep(store, DueInstallations(projector.engine)).expired == 0


@pytest.mark.parametrize("flag", ["true", "false"])
def test_serve_runs_projections_unless_told_that_projectors_run_elsewhere(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    import threading

    from starlette.testclient import TestClient

    monkeypatch.setenv("APPSTORE_SERVE_PROJECTIONS", flag)
    read_once = Settings(database_url=settings.database_url, fast_password_hashing=True)
    with TestClient(app_from_environment(read_once)):
        names = {t.name for t in threading.enumerate()}
    assert ("projector" in names) is (flag == "true")
