"""How long-running processes use the garbage collector (appstore/collector.py): a replay,
`appstore project` and `appstore consume` collect less often and give the collector back as
they found it."""

from __future__ import annotations

import gc
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from appstore import processes
from appstore.cli import cli
from appstore.collector import fewer_collections
from appstore.settings import Settings
from projections.runner import Projector


def test_appstore_consume_runs_the_worker_with_fewer_collections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Kafka consumer allocates an event's worth of objects per message: collecting
    every 700 allocations cost ~12 % of its throughput."""
    seen: list[int] = []

    def consume(settings: Any, **options: Any) -> None:
        seen.append(gc.get_threshold()[0])

    monkeypatch.setattr(processes, "consume", consume)
    monkeypatch.setenv("APPSTORE_DATABASE_URL", "sqlite:///unused.db")
    result = CliRunner().invoke(cli, ["consume"])
    assert result.exit_code == 0, result.output
    assert seen == [50_000]
    assert gc.get_threshold()[0] != 50_000  # restored when the consumer stops


def test_a_replay_collects_garbage_less_often_and_restores_the_collector_after() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= 50_000
        assert gc.get_freeze_count() > 0  # what existed before is not walked again
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_projector_process_collects_garbage_as_a_replay_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`appstore project` runs its loop under `fewer_collections` (5-8% of a catch-up's time
    went to the collector), and gives the collector back as it found it."""
    seen: list[tuple[tuple[int, int, int], int]] = []

    class Loop:
        def run(self, stop: object) -> None:
            seen.append((gc.get_threshold(), gc.get_freeze_count()))

    monkeypatch.setattr(Projector, "loop", lambda self, *args, **kwargs: Loop())
    before = gc.get_threshold()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/appstore.db", fast_password_hashing=True
    )
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        processes.project(settings)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    [(threshold, frozen)] = seen
    assert threshold[0] >= 50_000
    assert frozen > 0
    assert gc.get_threshold() == before
