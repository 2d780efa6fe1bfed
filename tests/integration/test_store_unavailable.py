"""An unavailable store answers 503 problem+json with Retry-After, logged as one line (no
traceback per request), and /readyz says so within a second (issue 10 #1-#3, over ASGI).
The real outages (PostgreSQL stopped, connections terminated, a read-only role) are in
tests/e2e/test_faults.py."""

from __future__ import annotations

import logging
import sqlite3
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from eventsourcing.persistence import InternalError, OperationalError

from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.clock import FixedClock
from tests import factories as f

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _chained(error: BaseException, wrapper: type[Exception]) -> Exception:
    try:
        raise error
    except BaseException as cause:
        wrapped = wrapper(str(cause))
        wrapped.__cause__ = cause
        return wrapped


OUTAGES: dict[str, Any] = {
    "terminated": lambda: _chained(
        psycopg.errors.AdminShutdown("terminating connection"), OperationalError
    ),
    "pool timeout": lambda: _chained(
        psycopg.OperationalError("couldn't get a connection after 2.00 sec"), OperationalError
    ),
    "read-only": lambda: _chained(
        psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
        InternalError,
    ),
    "permission denied": lambda: psycopg.errors.InsufficientPrivilege("permission denied"),
    "sqlite locked": lambda: _chained(
        sqlite3.OperationalError("database is locked"), OperationalError
    ),
    "sqlalchemy": lambda: sa.exc.OperationalError("SELECT 1", {}, Exception("server closed")),
}


@pytest.fixture
def app_and_client(tmp_path: Path) -> Iterator[tuple[Any, TestClient]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/down.db", fast_password_hashing=True)
    app = create_app(settings, clock=FixedClock(), run_projections=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client
    app.state.store.close()
    app.state.projector.engine.dispose()


@pytest.mark.parametrize("outage", sorted(OUTAGES))
def test_an_unavailable_store_is_a_503_with_retry_after_and_one_log_line(
    app_and_client: tuple[Any, TestClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    app, client = app_and_client
    store = app.state.store
    seller = f.seller(store)

    def down(*args: object, **kwargs: object) -> object:
        raise OUTAGES[outage]()

    monkeypatch.setattr(store, "load", down)
    caplog.set_level(logging.INFO)
    answer = client.post("/v1/sessions", json={"email": "x@example.com", "password": "p" * 12})
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["title"] == "Service unavailable"
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "store unavailable" in lines[0].getMessage() and not lines[0].exc_info
    assert seller  # (a seller exists: the 503 is the outage, not a missing account)


def test_a_read_model_outage_is_a_503_too(
    app_and_client: tuple[Any, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = app_and_client

    def down(*args: object, **kwargs: object) -> object:
        raise OUTAGES["sqlalchemy"]()

    monkeypatch.setattr(app.state.projector.engine, "connect", down)
    answer = client.get("/v1/apps")
    assert answer.status_code == 503
    assert answer.headers["retry-after"]


def test_a_bug_is_still_a_500_with_its_traceback(
    app_and_client: tuple[Any, TestClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = app_and_client

    def broken(*args: object, **kwargs: object) -> object:
        raise sqlite3.OperationalError("no such table: accounts")

    monkeypatch.setattr(app.state.store, "load", broken)
    answer = client.post("/v1/sessions", json={"email": "x@example.com", "password": "p" * 12})
    assert answer.status_code == 500
    assert any(r.exc_info for r in caplog.records if "unhandled error" in r.getMessage())


def test_readyz_answers_503_within_a_second_when_the_store_hangs(
    app_and_client: tuple[Any, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = app_and_client
    assert client.get("/readyz").status_code == 200

    def hangs() -> object:
        time.sleep(5)
        raise OUTAGES["pool timeout"]()

    monkeypatch.setattr(app.state.projector, "measure", hangs)
    started = time.monotonic()
    answer = client.get("/readyz")
    assert time.monotonic() - started < 1.0
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"


def test_loops_show_on_readyz_and_metrics(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/loops.db", fast_password_hashing=True)
    app = create_app(settings, clock=FixedClock(), sweep_interval=60)
    with TestClient(app) as client:
        ready = client.get("/readyz").json()
        assert set(ready["loops"]) == {"projector", "sweeper"}
        assert all(loop["alive"] for loop in ready["loops"].values())
        metrics = client.get("/metrics").text
        assert 'appstore_loop_up{loop="projector"} 1.0' in metrics
        assert 'appstore_loop_consecutive_failures{loop="sweeper"} 0.0' in metrics
    app.state.store.close()
    app.state.projector.engine.dispose()


def test_readyz_is_503_while_the_projector_fails_and_200_once_it_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/fail.db", fast_password_hashing=True)
    app = create_app(settings, clock=FixedClock())
    projector = app.state.projector
    real = projector.run_once
    broken = [True]

    def run_once() -> int:
        if broken[0]:
            raise OUTAGES["terminated"]()
        return int(real())

    monkeypatch.setattr(projector, "run_once", run_once)
    with TestClient(app) as client:
        deadline = time.monotonic() + 5
        while client.get("/readyz").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        answer = client.get("/readyz").json()
        assert answer["status"] == "projector_failing"
        assert answer["loops"]["projector"]["alive"] is True
        assert "terminating connection" in answer["loops"]["projector"]["last_error"]
        broken[0] = False
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.05)
    app.state.store.close()
    projector.engine.dispose()
