"""A catch-up on PostgreSQL steps different projections at once, each lane on a connection
of its own (projections/lanes.py), and a catch-up waits for a projection another process is
stepping instead of leaving it behind."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from application import installations as install_commands
from application.store import Store
from domain.installation import Installation
from projections.batch import Batch
from projections.projection import On, Projection, on
from projections.read_side import build_projector, snapshot
from projections.runner import Projector
from projections.tracking import tracking
from tests import factories as f
from tests.webhook_receiver import until

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


class _Meeting(Projection):
    """Its handler waits until the other projection's handler is running too (a step of
    each at once), and records the server process its step runs on."""

    def __init__(self, name: str, meeting: threading.Barrier, met: dict[str, int]) -> None:
        self.name, self._meeting, self._met = name, meeting, met

    def handlers(self) -> Sequence[On[Any]]:
        return [on(Installation.Installed, self._installed)]

    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        if self.name not in self._met:
            self._met[self.name] = int(
                batch.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            )
            self._meeting.wait()  # broken (an error) if the other never comes


def _installs(store: Store, count: int) -> None:
    developer, seller = f.developer(store), f.seller(store)
    for _ in range(count):
        app_id = f.app(store, developer)
        install_commands.install(store, seller, app_id, "30d", "ops@shop.example", "+1415555")


def test_a_catch_up_steps_two_projections_at_once_each_on_its_own_connection(
    store: Store, database_url: str
) -> None:
    _installs(store, 3)
    meeting, met = threading.Barrier(2, timeout=30), {}
    projections = [_Meeting("left", meeting, met), _Meeting("right", meeting, met)]
    projector = Projector(store, build_projector(store, database_url).engine, projections)
    projector.setup()
    assert projector.lanes == 2
    projector.catch_up()
    assert not meeting.broken
    assert set(met) == {"left", "right"} and met["left"] != met["right"]
    assert projector.lag() == {"left": 0, "right": 0}
    assert not [t for t in threading.enumerate() if t.name.startswith("projector-lane")]


def _built_then_reset(projector: Any) -> Any:
    """What a catch-up from 0 builds; then every projection reset, to build it again."""
    projector.catch_up()
    built = snapshot(projector)
    for name in projector.projections:
        projector.reset(name)
    return built


def test_lanes_build_what_one_connection_builds(store: Store, database_url: str) -> None:
    """Every read model, in small steps on two lanes and on one: the same rows."""
    _installs(store, 7)
    projector = build_projector(store, database_url, batch_size=3)
    built = _built_then_reset(projector)
    projector.lanes = 1
    projector.catch_up()
    assert snapshot(projector) == built


def test_a_catch_up_waits_for_the_step_another_process_is_taking(
    store: Store, database_url: str
) -> None:
    """Read-your-writes: a projection whose tracking row another process holds (in the
    middle of a step) is stepped once that step has ended, not left behind."""
    _installs(store, 2)
    projector = build_projector(store, database_url)
    other = build_projector(store, database_url, setup=False)
    done = threading.Event()
    with other.engine.connect() as holder:
        holder.execute(
            sa.select(tracking.c.position).where(tracking.c.name == "my_apps").with_for_update()
        )
        catch_up = threading.Thread(target=lambda: (projector.catch_up(), done.set()))
        catch_up.start()

        def waiting_for_the_lock() -> bool:
            with other.engine.connect() as conn:  # not the holder's: its view stays as it was
                waits = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar()
            return bool(waits) or done.is_set()

        until(waiting_for_the_lock, timeout=30)
        holder.rollback()  # the other process's step ends
    catch_up.join(30)
    assert done.is_set()
    assert projector.lag()["my_apps"] == 0
    other.engine.dispose()
    projector.engine.dispose()


def test_a_step_after_the_position_it_last_saw_moves_it_with_the_lock(
    store: Store, database_url: str
) -> None:
    """A step reads the page after the position this process last saw before the lock and
    the lock moves the position past it (one statement): no tracking UPDATE of its own;
    when another process moved the position meanwhile, the step applies from where that
    one left it, and the rows are those of one projector alone."""
    _installs(store, 6)
    alone = build_projector(store, database_url, batch_size=2)
    expected = _built_then_reset(alone)
    alone.engine.dispose()

    first = build_projector(store, database_url, batch_size=2)
    second = build_projector(store, database_url, batch_size=2, setup=False)
    updates: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE PROJECTION_TRACKING"):
            updates.append(statement)

    sa.event.listen(first.engine, "before_cursor_execute", count)
    assert first.step("my_apps").applied == 2  # the first: locks, then its own UPDATE
    assert len(updates) == 1
    assert first.step("my_apps").applied == 2  # from the position it saw: with the lock
    assert len(updates) == 1
    assert second.step("my_apps").applied == 2  # another process moves it on meanwhile
    assert first.step("my_apps").applied == 2  # the page it read first is not the next
    assert len(updates) == 2
    for projector in (first, second):
        projector.catch_up()
    assert first.lag() == dict.fromkeys(first.projections, 0)
    assert snapshot(first) == expected
    first.engine.dispose()
    second.engine.dispose()
