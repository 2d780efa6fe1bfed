"""`appstore replay`: read models split into groups of about equal cost, one per process;
fewer garbage collections while it applies (and while `appstore project` runs)."""

from __future__ import annotations

import gc
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appstore import processes
from appstore.collector import fewer_collections
from appstore.replay import groups
from appstore.settings import Settings
from projections.projection import Projection
from projections.read_side import all_projections
from projections.runner import Projector


def _projection(name: str, cost: float) -> Projection:
    projection = Projection()
    projection.name, projection.replay_cost = name, cost
    return projection


def test_the_read_models_split_in_two_groups_of_about_equal_cost() -> None:
    projections = all_projections()
    split = groups(projections, 2)
    assert len(split) == 2
    assert sorted(n for names in split for n in names) == sorted(p.name for p in projections)
    cost = {p.name: p.replay_cost for p in projections}
    totals = [sum(cost[n] for n in names) for names in split]
    assert max(totals) - min(totals) <= max(cost.values())
    assert groups(projections, 1) == [[p.name for p in projections]]  # one: all, in order


@given(
    costs=st.lists(st.floats(0.1, 10), min_size=1, max_size=8),
    workers=st.integers(1, 10),
)
def test_every_read_model_is_in_exactly_one_group_and_no_group_is_empty(
    costs: list[float], workers: int
) -> None:
    projections = [_projection(f"p{i}", c) for i, c in enumerate(costs)]
    split = groups(projections, workers)
    assert len(split) == min(workers, len(costs))
    assert all(split)
    assert sorted(n for names in split for n in names) == sorted(p.name for p in projections)


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
