"""The health server every process without the API serves on `--metrics-port`: /readyz
judged over its loops by the readiness policy, /metrics with every loop's gauges; and a
dispatcher's loop reporting as its lag the deliveries waiting for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from uuid import uuid4

import httpx
import pytest

from application.dispatch import Dispatcher, DueDelivery, Sent
from application.loops import LoopHealth, Loops, ReadinessPolicy
from application.store import Store
from appstore.health_server import readiness, serve_health
from appstore.outbound import dispatcher_loops
from appstore.settings import Settings
from tests.stack_support import timed


@pytest.fixture
def loops() -> Loops:
    return Loops()


@pytest.fixture
def served(loops: Loops) -> Iterator[str]:
    server = serve_health(loops, "127.0.0.1", 0, details=lambda: {"head": 7})
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_readyz_is_200_while_every_loop_is_ready(loops: Loops, served: str) -> None:
    loops.register(LoopHealth("projector")).started()
    answer = httpx.get(f"{served}/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["ready"], body["head"]) == ("ok", True, 7)
    assert body["loops"]["projector"]["status"] == "ok"
    assert httpx.get(f"{served}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served}/nowhere").status_code == 404


def test_readyz_is_503_naming_the_first_loop_not_ready(loops: Loops, served: str) -> None:
    projector = loops.register(LoopHealth("projector"))
    projector.started()
    dispatcher = loops.register(
        LoopHealth("dispatcher-webhook", policy=ReadinessPolicy(max_lag=5, lag_seconds=0))
    )
    dispatcher.started()
    dispatcher.report_lag(6)  # above max_lag, for longer than lag_seconds (0)
    answer = httpx.get(f"{served}/readyz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "dispatcher-webhook_lagging"
    dispatcher.report_lag(0)
    projector.failed(ConnectionError("the database went away"))
    answer = httpx.get(f"{served}/readyz")
    assert (answer.status_code, answer.json()["status"]) == (503, "projector_failing")
    assert "the database went away" in answer.json()["loops"]["projector"]["last_error"]
    projector.succeeded()
    projector.stopped()
    assert httpx.get(f"{served}/readyz").json()["status"] == "projector_stopped"


def test_metrics_show_every_loop(loops: Loops, served: str) -> None:
    health = loops.register(LoopHealth("dispatcher-webhook"))
    health.started()
    health.report_lag(12)
    health.failed(TimeoutError("slow"))
    text = httpx.get(f"{served}/metrics").text
    assert 'appstore_loop_up{loop="dispatcher-webhook"} 1.0' in text
    assert 'appstore_loop_ready{loop="dispatcher-webhook"} 0.0' in text
    assert 'appstore_loop_lag{loop="dispatcher-webhook"} 12.0' in text
    assert 'appstore_loop_consecutive_failures{loop="dispatcher-webhook"} 1.0' in text


def test_what_the_process_adds_cannot_hide_a_loop_that_is_not_ready(loops: Loops) -> None:
    loops.register(LoopHealth("consumer"))  # never started
    status, body = readiness(loops, lambda: {"status": "ok", "ready": True, "partitions": {}})
    assert (status, body["status"], body["ready"]) == (503, "consumer_stopped", False)
    assert body["partitions"] == {}


class Waiting:
    """Deliveries the read model finds due: `count` of them, each time asked."""

    def __init__(self, count: int) -> None:
        self.count = count

    def due(self, now: datetime, limit: int) -> Sequence[DueDelivery]:
        return [
            DueDelivery(uuid4(), 0, now, uuid4(), "installation.authorized", "{}", now)
            for _ in range(min(self.count, limit))
        ]


class Accepting:
    name = "webhook"

    def send(self, deliveries: Sequence[DueDelivery]) -> Sequence[Sent]:
        return [Sent(True, 200) for _ in deliveries]


def test_a_dispatcher_reports_the_deliveries_waiting_for_it_as_its_lag(store: Store) -> None:
    waiting = Waiting(count=50)
    dispatcher = Dispatcher(store, waiting, Accepting(), batch_size=2)
    loops = Loops()
    policy = ReadinessPolicy(max_lag=10, lag_seconds=0)
    settings = Settings(database_url="sqlite://unused")
    (loop,) = dispatcher_loops([dispatcher], settings, loops, policy)
    health = loops.snapshot
    stop = threading.Event()
    thread = loop.start(stop)
    try:
        # Counted up to max_lag + 1: enough to say "lagging" without counting a backlog.
        timed(lambda: health()["dispatcher-webhook"]["lag"] == 11, 10, "the lag counted")
        assert readiness(loops)[1]["status"] == "dispatcher-webhook_lagging"
        waiting.count = 0
        timed(lambda: health()["dispatcher-webhook"]["lag"] == 0, 10, "no lag any more")
        assert readiness(loops)[0] == 200
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
