"""Reads on the serving thread (projections/db.py, `Call.read` in api/routing.py): on an
SQLite file a read model's query runs where the request is served; on PostgreSQL in the
threadpool; and a read that would wait for another thread's work (the catalog's text index
being built) goes to the threadpool instead of holding up every other request."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from projections import catalog_search, catalog_text
from projections.catalog_text_rows import HEAD
from projections.db import WouldWait, holding, not_waiting, reads_in_process
from tests import factories as f

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def on_serving_thread() -> bool:
    """Whether the caller runs on the thread of the event loop serving requests."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def where_called(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[bool]:
    """Replaces `module.name` with a function noting, at each call, `on_serving_thread()`."""
    seen: list[bool] = []
    function = getattr(module, name)

    def spy(*args: Any) -> Any:
        seen.append(on_serving_thread())
        return function(*args)

    monkeypatch.setattr(module, name, spy)
    return seen


def test_a_read_model_query_runs_on_the_serving_thread_on_sqlite_only(
    settings: Settings, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = where_called(monkeypatch, catalog_search, "find_app")
    app = create_app(settings, clock=clock)
    try:
        with TestClient(app) as client:
            app_id = f.app(app.state.store, f.developer(app.state.store))
            app.state.projector.catch_up()
            answer = client.get(f"/v1/apps/{app_id}")
            assert answer.status_code == 200, answer.text
    finally:
        app.state.store.close()
        app.state.projector.engine.dispose()
    assert seen == [settings.database_url.startswith("sqlite")]


@contextmanager
def serving_one_app(tmp_path: Path, clock: FixedClock) -> Iterator[tuple[Any, TestClient]]:
    """`appstore serve`'s app on an SQLite file with one app listed ("Parcel Labels"), its
    read models caught up and its text index built by a first search."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/store.db", fast_password_hashing=True)
    app = create_app(settings, clock=clock)
    try:
        with TestClient(app) as client:
            f.app(app.state.store, f.developer(app.state.store), name="Parcel Labels")
            app.state.projector.catch_up()
            assert client.get("/v1/apps", params={"q": "parcel"}).json()["total"] == 1
            yield app, client
    finally:
        app.state.store.close()
        app.state.projector.engine.dispose()


def test_a_search_waiting_for_the_text_index_waits_in_the_threadpool(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = where_called(monkeypatch, catalog_text, "search")
    with serving_one_app(tmp_path, clock) as (app, client):
        with app.state.projector.engine.connect() as conn:
            index = catalog_text.index_of(conn)
        answers: dict[str, Any] = {}

        def ask(name: str, path: str, params: dict[str, str] | None = None) -> None:
            answers[name] = client.get(path, params=params)

        searching = threading.Thread(target=ask, args=("search", "/v1/apps", {"q": "label"}))
        probing = threading.Thread(target=ask, args=("health", "/healthz"))
        with index.lock:  # as a build of the index in another thread holds it
            searching.start()
            searching.join(timeout=0.5)
            probing.start()
            probing.join(timeout=10)
            # The serving thread stayed free: another request was answered meanwhile.
            assert answers.get("health") is not None and answers["health"].status_code == 200
            assert searching.is_alive()  # the search waits for the index, elsewhere
        searching.join(timeout=10)
    assert answers["search"].status_code == 200
    assert [item["name"] for item in answers["search"].json()["items"]] == ["Parcel Labels"]
    # Tried here first (on the serving thread), answered from the threadpool once free.
    assert seen[-2:] == [True, False]


@pytest.mark.parametrize(
    ("last_looked", "elsewhere"),
    [
        ("after the head: the read models were rebuilt", True),
        ("many positions ago", True),
        ("one position ago", False),
    ],
)
def test_a_search_that_would_build_the_text_index_or_catch_much_up_runs_in_the_threadpool(
    tmp_path: Path,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    last_looked: str,
    elsewhere: bool,
) -> None:
    seen = where_called(monkeypatch, catalog_text, "search")
    with serving_one_app(tmp_path, clock) as (app, client):
        for thread in threading.enumerate():
            if thread.name == "text-index":  # the start-up build: done before we go on
                thread.join(timeout=30)
        with app.state.projector.engine.connect() as conn:
            index = catalog_text.index_of(conn)
            head = conn.execute(HEAD).scalar_one()
        monkeypatch.setattr(catalog_text, "SHORT_REFRESH", 1)  # more is many here
        assert head >= 2
        index.head = {
            "after the head: the read models were rebuilt": head + 1,
            "many positions ago": head - 2,
            "one position ago": head - 1,
        }[last_looked]
        answer = client.get("/v1/apps", params={"q": "label"})
    assert [item["name"] for item in answer.json()["items"]] == ["Parcel Labels"]
    assert index.head == head
    # On the serving thread first; in the threadpool when that would have been long work.
    assert seen[-2:] == [True, False] if elsewhere else seen[-1:] == [True]


def test_holding_a_lock_another_thread_holds_raises_only_when_not_waiting() -> None:
    lock = threading.Lock()
    with not_waiting(), holding(lock):
        assert lock.locked()  # a free lock is taken
    assert not lock.locked()
    lock.acquire()
    released = threading.Timer(0.2, lock.release)
    try:
        with not_waiting(), pytest.raises(WouldWait), holding(lock):
            pass
        released.start()
        with holding(lock):  # outside not_waiting: waits for it
            assert lock.locked()
    finally:
        released.join()
    assert not lock.locked()


def test_reads_are_this_process_s_own_work_on_an_sqlite_file_only(tmp_path: Path) -> None:
    assert reads_in_process(sa.create_engine(f"sqlite:///{tmp_path}/store.db"))
    assert not reads_in_process(sa.create_engine("sqlite://"))
    assert not reads_in_process(sa.create_engine("sqlite:///:memory:"))
    assert not reads_in_process(sa.create_engine("postgresql+psycopg://u@127.0.0.1/appstore"))
