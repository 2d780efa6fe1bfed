"""Builds the store's objects from settings: the event store for SQLite or PostgreSQL."""

from __future__ import annotations

import random
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import IntegrityError, InternalError

from appstore.settings import Settings
from domain.clock import Clock
from domain.credentials import Passwords
from domain.store import AppStore

STARTUP_ATTEMPTS = 8


def event_store_env(database_url: str) -> dict[str, str]:
    """The `eventsourcing` environment for a database URL."""
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        # sqlite:///relative/path.db  or  sqlite:////absolute/path.db
        path = database_url.split("://", 1)[1][1:] if "://" in database_url else ""
        if not path:
            raise ValueError(f"no file in {database_url!r}")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path
            if path != ":memory:"
            else "file::memory:?mode=memory&cache=shared",
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if scheme in ("postgresql", "postgres"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/") or "appstore",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            # Writers serialise on a table lock; a stuck one must not block the rest forever.
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
        }
    raise ValueError(f"unsupported APPSTORE_DATABASE_URL scheme {parts.scheme!r}")


def build_store(
    settings: Settings, *, clock: Clock | None = None, aggregate_cache: int = 0
) -> AppStore:
    """The write side (event store + commands) for these settings.

    `aggregate_cache` keeps that many recently used aggregates in memory; each read still
    fetches the events appended since (fast-forward), so other writers are never missed.
    Worth it where the same aggregates are hit again and again (the sync consumer).
    """
    passwords = Passwords.fast() if settings.fast_password_hashing else Passwords()
    env = event_store_env(settings.database_url)
    if aggregate_cache:
        env["AGGREGATE_CACHE_MAXSIZE"] = str(aggregate_cache)
    for attempt in range(1, STARTUP_ATTEMPTS + 1):
        try:
            return AppStore(env, clock=clock, passwords=passwords)
        except (InternalError, IntegrityError):
            # Processes starting together all run eventsourcing's CREATE TABLE IF NOT EXISTS
            # and CREATE OR REPLACE FUNCTION; PostgreSQL refuses the losers of that race
            # ("tuple concurrently updated"). The schema is there a moment later: try again.
            if attempt == STARTUP_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")
