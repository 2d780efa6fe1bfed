"""Shared fixtures: a clock, and a fresh store on each backend (SQLite file, real PostgreSQL).

`make test` starts a throw-away PostgreSQL cluster and exports APPSTORE_TEST_POSTGRES_URL;
each PostgreSQL test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock

POSTGRES_URL = os.environ.get("APPSTORE_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test cluster (dropped afterwards)."""
    if not POSTGRES_URL:
        pytest.skip("APPSTORE_TEST_POSTGRES_URL is not set (make test sets it)")
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/appstore.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, fast_password_hashing=True, ops_token="ops-secret")


@pytest.fixture
def store(settings: Settings, clock: FixedClock) -> Iterator[Store]:
    app = build_store(settings, clock=clock)
    yield app
    app.close()
