"""`appstore replay`: read models split into groups of about equal cost, one per process
(its garbage collections: tests/unit/test_collector.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.process_lanes import groups
from projections.projection import Projection
from projections.read_side import all_projections


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
