"""Shared fixtures: a clock, and a fresh store on each backend (SQLite file, real PostgreSQL).

`make test` starts a throw-away PostgreSQL cluster and exports APPSTORE_TEST_POSTGRES_URL;
each PostgreSQL test gets a database of its own, dropped afterwards.

Services: a test that needs PostgreSQL, Kafka or Chromium is marked `postgres`, `kafka` or
`browser` (a test using one of their fixtures is marked here at collection, so none can
forget). Without the service such a test skips, except when APPSTORE_TEST_REQUIRE_SERVICES
names it: `make test` names all three (scripts/with-services.sh adds the ones it started),
and then the skip is a failure, so a lost service can never turn into a green run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from tests.databases import postgres_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SERVICES = ("postgres", "kafka", "browser")
# The fixtures that reach a service, by the service's marker.
SERVICE_FIXTURES = {
    "postgres": ("postgres_url",),
    "kafka": ("kafka_bootstrap", "private_broker"),
    "browser": ("browser", "live_server"),
}


def required_services() -> set[str]:
    """The services this run must have (APPSTORE_TEST_REQUIRE_SERVICES, space or comma)."""
    named = os.environ.get("APPSTORE_TEST_REQUIRE_SERVICES", "").replace(",", " ").split()
    unknown = set(named) - set(SERVICES)
    if unknown:
        raise pytest.UsageError(f"APPSTORE_TEST_REQUIRE_SERVICES: unknown {sorted(unknown)}")
    return set(named)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test that uses a service's fixture with that service."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for service, fixtures in SERVICE_FIXTURES.items():
            if used.intersection(fixtures) and item.get_closest_marker(service) is None:
                item.add_marker(service)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A skipped test that needs a required service fails instead."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        needed = sorted(s for s in required_services() if item.get_closest_marker(s))
        if needed:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = (
                f"skipped, but this run requires {', '.join(needed)} "
                f"(APPSTORE_TEST_REQUIRE_SERVICES): {reason}"
            )
    return report


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test cluster (dropped afterwards)."""
    with postgres_database() as url:
        yield url


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
