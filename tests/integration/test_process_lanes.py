"""A catch-up split over processes (`Projector.processes`, projections/process_lanes.py):
the other process steps its share of the read models, what it builds is what one process
builds, and a step failing there (or that process dying) fails the catch-up, no hang.
`appstore project` far behind catches up so first (`catch_up_first`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from application.loops import LoopHealth
from appstore.bootstrap import build_store, projector_in_a_lane, read_side
from appstore.processes import catch_up_first
from appstore.settings import Settings
from projections.process_lanes import Round, StepFailed, groups
from projections.read_side import all_projections, snapshot
from projections.runner import Projector, StepResult
from tests import factories as f


def _recording(path: Path, settings: Settings, names: list[str], batch_size: int) -> Projector:
    """In the spawned process: the composition root's projector, its pid and share noted."""
    path.write_text(f"{os.getpid()} {','.join(names)} {batch_size}")
    return projector_in_a_lane(settings, names, batch_size)


class _Failing:
    """In the spawned process: a projector whose steps raise, or whose process dies."""

    durable = True

    def __init__(self, how: str) -> None:
        self.how = how

    def settle(self) -> None:
        pass

    @contextmanager
    def rounds(self, names: object) -> Iterator[Round]:
        def run(wanted: list[str]) -> list[StepResult]:
            if self.how == "dies":
                os._exit(3)
            raise LookupError("no such row")

        yield run

    def close(self) -> None:
        pass


def _failing(how: str, names: list[str], batch_size: int) -> _Failing:
    return _Failing(how)


def _store_with_apps(settings: Settings) -> Projector:
    store = build_store(settings)
    developer, sellers = f.developer(store), [f.seller(store) for _ in range(3)]
    for n in range(6):
        app_id = f.app(store, developer, categories=[["connectors", "analytics"][n % 2]])
        f.active_installation(store, sellers[n % 3], app_id)
    return read_side(store, settings, batch_size=4)


def _recorded(postgres_url: str, folder: Path) -> tuple[Settings, Projector, Path]:
    """A store with apps, and its projector whose other processes note who they are (in
    the file answered)."""
    settings = Settings(database_url=postgres_url, fast_password_hashing=True)
    projector = _store_with_apps(settings)
    noted = folder / "lane"
    projector.spawn = partial(_recording, noted, settings)
    return settings, projector, noted


@pytest.mark.postgres
def test_a_catch_up_in_two_processes_builds_what_one_builds(
    postgres_url: str, tmp_path: Path
) -> None:
    _, projector, noted = _recorded(postgres_url, tmp_path)
    projector.catch_up()
    alone = snapshot(projector)
    head = projector.head()
    for name in projector.projections:
        projector.reset(name)
    with projector.processes(2) as used:
        applied = projector.catch_up()
        projector.settle()  # the other process answers between rounds too
    assert used == 2
    assert applied == head * len(projector.projections)
    assert snapshot(projector) == alone
    assert set(projector.positions().values()) == {head}
    pid, share, batch = noted.read_text().split()
    theirs = groups(all_projections(), 2)[1]
    assert int(pid) != os.getpid() and share.split(",") == theirs and batch == "4"
    projector.close()


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_step_failing_in_the_other_process_fails_the_catch_up(
    postgres_url: str, how: str
) -> None:
    settings = Settings(database_url=postgres_url, fast_password_hashing=True)
    projector = _store_with_apps(settings)
    projector.spawn = partial(_failing, how)
    with pytest.raises(StepFailed) as failed, projector.processes(2):
        projector.catch_up()
    expected = "LookupError: no such row" if how == "raises" else "process ended (exit code 3)"
    assert expected in str(failed.value)
    # This process's share was stepped meanwhile; the other's rows are not there.
    mine = groups(all_projections(), 2)[0]
    positions = projector.positions()
    assert all(positions[name] > 0 for name in mine)
    assert all(positions[name] == 0 for name in positions if name not in mine)
    projector.close()


def test_on_sqlite_a_catch_up_stays_in_one_process(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/a.db", fast_password_hashing=True)
    projector = _store_with_apps(settings)
    with projector.processes(2) as used:
        projector.catch_up()
    assert used == 1
    assert set(projector.positions().values()) == {projector.head()}
    projector.close()


@pytest.mark.postgres
def test_appstore_project_far_behind_catches_up_in_processes_first(
    postgres_url: str, tmp_path: Path
) -> None:
    settings, projector, noted = _recorded(postgres_url, tmp_path)
    health, stop = LoopHealth("projector"), threading.Event()
    head = projector.head()
    assert catch_up_first(projector, settings, health, stop, at_least=head + 1) == 0
    assert not noted.exists()  # not that far behind: the polling loop will do
    applied = catch_up_first(projector, settings, health, stop, at_least=head)
    assert applied == head * len(projector.projections)
    assert set(projector.positions().values()) == {head}
    assert noted.exists() and health.snapshot()["lag"] == 0
    projector.close()


@pytest.mark.postgres
def test_a_catch_up_first_stops_between_rounds_and_a_failing_one_leaves_it_to_the_loop(
    postgres_url: str,
) -> None:
    settings = Settings(database_url=postgres_url, fast_password_hashing=True)
    projector = _store_with_apps(settings)
    health, stop = LoopHealth("projector"), threading.Event()
    stop.set()
    assert catch_up_first(projector, settings, health, stop, at_least=1) == 0
    assert set(projector.positions().values()) == {0}
    projector.spawn = partial(_failing, "raises")
    assert catch_up_first(projector, settings, health, threading.Event(), at_least=1) == 0
    assert "LookupError: no such row" in health.snapshot()["last_error"]
    projector.close()
