"""The read side's processes: replay, migrate, expire (as the CLI runs them)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application import installations
from application.expiry import sweep
from application.store import Store
from appstore import processes
from appstore.bootstrap import app_from_environment
from appstore.settings import Settings
from domain.clock import FixedClock
from projections.my_apps import DueInstallations
from projections.read_side import build_projector, snapshot
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
        ["catalog", "my_apps", "incidents", "webhook_deliveries", "notifications"], 0
    )


def test_replay_of_an_unknown_projection_exits_with_a_message(settings: Settings) -> None:
    with pytest.raises(SystemExit) as exit_:
        processes.replay(settings, "nope")
    assert exit_.value.code == 2


def test_migrate_is_idempotent(settings: Settings) -> None:
    processes.migrate(settings)
    processes.migrate(settings)


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
