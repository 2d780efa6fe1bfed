"""Processes starting together on a fresh PostgreSQL database all create the schema; the
losers of that race get an error for a table or type another process just created, and
`build_store` tries again (the schema is there a moment later). Other errors are raised."""

from __future__ import annotations

from typing import Any

import psycopg.errors
import pytest
from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError

from appstore import bootstrap
from appstore.settings import Settings


def _caused_by(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


RACES = {
    "tuple concurrently updated": InternalError("tuple concurrently updated"),
    "a duplicate key in pg_type": IntegrityError("duplicate key value violates unique"),
    "relation already exists": _caused_by(
        ProgrammingError('relation "appstore_events" already exists'),
        psycopg.errors.DuplicateTable('relation "appstore_events" already exists'),
    ),
}


class _Racing:
    """Store's stand-in: fails with `error` the first `times` times it is built."""

    def __init__(self, error: Exception, times: int) -> None:
        self.error, self.left, self.built = error, times, 0

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        self.built += 1
        if self.left:
            self.left -= 1
            raise self.error
        return "store"


@pytest.mark.parametrize("race", list(RACES))
def test_a_process_that_lost_the_schema_race_tries_again(
    race: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    racing = _Racing(RACES[race], times=2)
    monkeypatch.setattr(bootstrap, "Store", racing)
    monkeypatch.setattr(bootstrap.time, "sleep", lambda _: None)
    settings = Settings(database_url="sqlite:///:memory:")
    assert bootstrap.build_store(settings) == "store"
    assert racing.built == 3


def test_a_programming_error_that_is_not_the_race_is_raised_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    racing = _Racing(ProgrammingError('syntax error at or near "SELEC"'), times=1)
    monkeypatch.setattr(bootstrap, "Store", racing)
    monkeypatch.setattr(bootstrap.time, "sleep", lambda _: None)
    with pytest.raises(ProgrammingError):
        bootstrap.build_store(Settings(database_url="sqlite:///:memory:"))
    assert racing.built == 1
