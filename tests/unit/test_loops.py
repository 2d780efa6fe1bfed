"""Background loops never die silently: any error is survived with backoff, and their health
says alive / failing / lagging / stopped (application/loops.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from application.availability import unavailable_reason
from application.loops import Backoff, LoopHealth, ReadinessPolicy, SupervisedLoop
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from projections.read_side import build_projector
from tests import factories as f


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _terminated() -> OperationalError:
    """What eventsourcing raises after pg_terminate_backend: its own OperationalError."""
    try:
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    except psycopg.Error as cause:
        try:
            raise OperationalError(str(cause)) from cause
        except OperationalError as error:
            return error


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_backoff_doubles_with_jitter_up_to_a_cap() -> None:
    backoff = Backoff(initial=0.1, cap=1.0)
    assert [backoff.delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5, 9)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
    ]
    assert backoff.delay(3, rand=lambda: 0.0) == pytest.approx(0.2)  # half of it is random


def test_a_loop_survives_any_error_and_reports_it(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[Exception] = [_terminated(), RuntimeError("a bug"), _terminated()]
    calls: list[float] = []

    def step() -> bool:
        calls.append(time.monotonic())
        if errors:
            raise errors.pop(0)
        return False

    health = LoopHealth("worker")
    loop = SupervisedLoop(
        "worker", step, interval=0.01, health=health, backoff=Backoff(initial=0.05, cap=0.2)
    )
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="appstore.loops")
    thread = loop.start(stop)
    try:
        wait_for(lambda: len(calls) >= 5)
        state = health.snapshot()
        assert (state["status"], state["alive"], state["consecutive_failures"]) == ("ok", True, 0)
        assert "AdminShutdown" not in (state["last_error"] or "")
        assert "terminating connection" in state["last_error"]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert health.snapshot()["status"] == "stopped"
    # Backed off between failed attempts (0.025-0.05 s, then doubling).
    assert calls[1] - calls[0] >= 0.02 and calls[2] - calls[1] >= 0.045
    failures = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(failures) == 3
    # An unreachable store is one line; a bug shows its traceback once.
    assert [bool(r.exc_info) for r in failures] == [False, True, False]
    assert "store unavailable (unreachable)" in failures[0].getMessage()
    assert any("recovered after 3" in r.getMessage() for r in caplog.records)


def test_a_failing_loop_is_not_ready_while_it_fails() -> None:
    clock = Clock()
    health = LoopHealth("projector", clock=clock, failing_grace_s=5)
    health.started()
    health.succeeded()
    health.failed(_terminated())
    assert health.snapshot()["status"] == "ok"  # within its grace
    clock.now += 5
    state = health.snapshot()
    assert (state["status"], state["ready"], state["failing_for_s"]) == ("failing", False, 5.0)
    health.succeeded()
    assert health.snapshot()["status"] == "ok"
    health.stopped()
    assert health.snapshot()["status"] == "stopped"


def test_lag_above_the_threshold_for_longer_than_allowed_is_not_ready() -> None:
    clock = Clock()
    health = LoopHealth(
        "projector", policy=ReadinessPolicy(max_lag=10, lag_seconds=30), clock=clock
    )
    health.started()
    health.report_lag(500)
    clock.now += 29
    health.report_lag(400)  # still above: the clock keeps running from the first time
    assert health.snapshot()["status"] == "ok"
    clock.now += 1
    state = health.snapshot()
    assert (state["status"], state["lag"], state["lag_above_for_s"]) == ("lagging", 400, 30.0)
    health.report_lag(3)
    assert health.snapshot()["status"] == "ok"
    health.block("stalled", "t-0")
    assert (health.snapshot()["status"], health.snapshot()["detail"]) == ("stalled", "t-0")


def test_unavailable_reason_reads_the_chain_of_causes() -> None:
    assert unavailable_reason(_terminated()) == "unreachable"
    try:
        raise psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT")
    except psycopg.Error as cause:
        read_only = RuntimeError("wrapped")
        read_only.__cause__ = cause
    assert unavailable_reason(read_only) == "read-only"
    denied = psycopg.errors.InsufficientPrivilege("permission denied for table x")
    assert unavailable_reason(denied) == "permission denied"
    import sqlite3

    assert unavailable_reason(sqlite3.OperationalError("database is locked")) == "locked"
    assert unavailable_reason(sqlite3.OperationalError("no such table: x")) is None
    assert unavailable_reason(ValueError("a bug")) is None


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Store, Settings]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/loops.db", fast_password_hashing=True)
    store = build_store(settings)
    yield store, settings
    store.close()


def test_the_projector_survives_eventsourcing_operational_errors(
    sqlite_store: tuple[Store, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 #1: eventsourcing's own OperationalError killed the projector thread."""
    store, settings = sqlite_store
    projector = build_projector(store, settings.database_url)
    real = store.notifications
    failures = [_terminated(), _terminated()]

    def flaky(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop(0)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "notifications", flaky)
    health = LoopHealth("projector")
    loop = projector.loop(0.01, health)
    loop.backoff = Backoff(initial=0.01, cap=0.05)
    stop = threading.Event()
    f.app(store)
    thread = loop.start(stop)
    try:
        wait_for(lambda: not failures and min(projector.lag().values()) == 0)
        wait_for(lambda: health.snapshot()["lag"] == 0)
        assert health.snapshot()["status"] == "ok" and thread.is_alive()
    finally:
        stop.set()
        projector.wake.set()
        thread.join(5)
        projector.engine.dispose()
