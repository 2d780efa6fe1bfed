"""Throw-away databases for tests: a PostgreSQL database on the test cluster, or an SQLite
file, created empty and removed afterwards (a property test takes one per example)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

POSTGRES_URL = os.environ.get("APPSTORE_TEST_POSTGRES_URL")
NO_POSTGRES = "APPSTORE_TEST_POSTGRES_URL is not set (make test sets it)"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test cluster (dropped afterwards)."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Linux's shared-memory tmpfs: SQLite commits there cost no disk flush, so property tests
# that make hundreds of stores stay fast (a killed process loses nothing there either).
MEMORY_FOLDER = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@contextmanager
def sqlite_database() -> Iterator[str]:
    """A new SQLite file in a temporary folder, in memory where the OS offers a tmpfs."""
    with tempfile.TemporaryDirectory(prefix="appstore-test-", dir=MEMORY_FOLDER) as folder:
        yield f"sqlite:///{folder}/store.db"


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A new, empty database of this backend ("sqlite" or "postgres")."""
    with postgres_database() if backend == "postgres" else sqlite_database() as url:
        yield url
