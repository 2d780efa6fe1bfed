"""How long-running processes use the garbage collector (appstore/collector.py; the
settings themselves: tests/unit/test_replay_groups.py)."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from typer.testing import CliRunner

from appstore import processes
from appstore.cli import cli


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
