"""Steps of different projections at once (projections/lanes.py): a round's results in the
order asked, every step of a round ended before it returns (an error too), each lane
entered once for all its steps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from projections.lanes import Lanes


def test_a_round_runs_its_steps_on_two_threads_and_answers_in_the_order_asked() -> None:
    both = threading.Barrier(2, timeout=10)  # broken unless two steps run at once
    entered: list[str] = []

    @contextmanager
    def lane() -> Iterator[None]:
        entered.append(threading.current_thread().name)
        yield

    def step(name: str) -> str:
        if name in ("a", "b"):
            both.wait()
        return f"{name} on {threading.current_thread().name}"

    cost = {"a": 3.0, "b": 2.0, "c": 1.0}.__getitem__
    with Lanes(1, step, lane) as lanes:
        first = lanes.run(["c", "b", "a"], cost)
        second = lanes.run(["c", "b", "a"], cost)
    for results in (first, second):
        assert [r.split(" on ")[0] for r in results] == ["c", "b", "a"]
        assert len({r.split(" on ")[1] for r in results}) == 2
    assert entered == ["projector-lane-1"]  # once, for all its steps
    assert not [t for t in threading.enumerate() if t.name.startswith("projector-lane")]


def test_an_error_is_raised_once_every_step_of_the_round_has_ended() -> None:
    ended: list[str] = []

    @contextmanager
    def lane() -> Iterator[None]:
        yield

    def step(name: str) -> str:
        if name == "bad":
            raise RuntimeError("boom")
        ended.append(name)
        return name

    with Lanes(1, step, lane) as lanes, pytest.raises(RuntimeError, match="boom"):
        lanes.run(["bad", "x", "y", "z"], lambda name: 1.0)
    assert sorted(ended) == ["x", "y", "z"]


def test_a_round_steps_each_projection_once() -> None:
    @contextmanager
    def lane() -> Iterator[None]:
        yield

    with Lanes(1, str.upper, lane) as lanes, pytest.raises(ValueError):
        lanes.run(["a", "a"], lambda name: 1.0)
