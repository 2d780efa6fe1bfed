"""The answer cache keeps answers at the newest position only: older ones can never be
asked for again (positions only move forward), and kept they cost every garbage collection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.answers import AnswerCache
from projections.runner import tracking


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = sa.create_engine("sqlite://")
    tracking.metadata.create_all(engine, tables=[tracking])
    with engine.begin() as connection:
        connection.execute(tracking.insert().values(name="catalog", position=1))
        yield connection
    engine.dispose()


def move(conn: Connection, position: int) -> None:
    conn.execute(tracking.update().values(position=position))


def test_an_answer_is_reused_at_the_same_position(conn: Connection) -> None:
    cache = AnswerCache("catalog")
    computed: list[str] = []

    def compute(c: Connection) -> str:
        computed.append("q")
        return "answer"

    for _ in range(3):
        assert cache.answer(conn, "q", compute) == "answer"
    assert computed == ["q"]
    assert (cache.hits, cache.misses) == (2, 1)


def test_answers_at_older_positions_are_dropped_when_the_position_moves(
    conn: Connection,
) -> None:
    cache = AnswerCache("catalog")
    for key in range(10):
        cache.answer(conn, key, lambda c: "at 1")
    assert len(cache) == 10
    move(conn, 2)
    assert cache.answer(conn, 0, lambda c: "at 2") == "at 2"
    assert len(cache) == 1  # the nine answers at position 1 are gone
    assert cache.answer(conn, 0, lambda c: "never") == "at 2"


def test_an_answer_computed_at_a_position_already_passed_is_not_kept(conn: Connection) -> None:
    cache = AnswerCache("catalog")

    def slow(c: Connection) -> str:
        move(c, 5)  # another request sees a newer position while this one computes
        cache.answer(c, "other", lambda c2: "at 5")
        return "at 1"

    assert cache.answer(conn, "q", slow) == "at 1"
    assert cache.answer(conn, "q", lambda c: "at 5") == "at 5"  # not the answer at 1


def test_the_cache_is_bounded(conn: Connection) -> None:
    cache = AnswerCache("catalog", size=3)
    for key in range(5):
        cache.answer(conn, key, lambda c: "computed")
    assert len(cache) == 3
    assert cache.answer(conn, 0, lambda c: "recomputed") == "recomputed"  # evicted, oldest
