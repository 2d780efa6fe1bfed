"""A store written by an earlier release (tests/fixtures/legacy_7555afe) still loads: the
current code serves it with the same answers, and `replay` rebuilds the same read models."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from appstore import processes
from appstore.bootstrap import build_store, create_app, read_side
from appstore.settings import Settings
from domain.clock import FixedClock
from projections.read_side import snapshot

FIXTURE = Path(__file__).parent.parent / "fixtures" / "legacy_7555afe"
CAPTURED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EVENTS_WRITTEN = 679
PASSWORD = "demo-password-123"


def _load(name: str) -> Any:
    with gzip.open(FIXTURE / name) as data:
        return json.load(data)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    with gzip.open(FIXTURE / "appstore.db.gz") as packed, (tmp_path / "old.db").open("wb") as db:
        shutil.copyfileobj(packed, db)
    return Settings(
        database_url=f"sqlite:///{tmp_path}/old.db",
        fast_password_hashing=True,
        ops_token="ops-secret",
    )


def _answers(client: TestClient, installation_id: str, slug: str) -> dict[str, Any]:
    """The same requests the earlier release answered (see the fixture's README)."""

    def login(email: str) -> dict[str, str]:
        answer = client.post("/v1/sessions", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 201, answer.text
        return {"Authorization": "Bearer " + answer.json()["token"]}

    seller = login("seller1@demo.example.com")
    developer = login("developer1@demo.example.com")
    ops = {"Authorization": "Bearer ops-secret"}

    def get(path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        answer = client.get(path, headers=headers, params=params)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    return {
        "apps": get("/v1/apps", page_size=100),
        "apps_search": get("/v1/apps", q="shipping", platform="shopify"),
        "detail": get(f"/v1/apps/{slug}"),
        "my_apps": get("/v1/me/apps", seller, page_size=100),
        "my_apps_cancelled": get("/v1/me/apps", seller, status="cancelled"),
        "incidents": get("/v1/me/incidents", seller, page_size=100),
        "developer_installations": get("/v1/developer/installations", developer, page_size=100),
        "record": get(f"/v1/me/apps/{installation_id}", seller),
        "history": get(f"/v1/audit/aggregates/{installation_id}/events", ops),
        "state_v3": get(f"/v1/audit/aggregates/{installation_id}", ops, version=3),
        "log": get("/v1/audit/events", ops, after=0, limit=1000),
    }


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    app = create_app(settings, clock=FixedClock(CAPTURED_AT))
    app.state.projector.catch_up()  # the old read models were rebuilt at start-up
    with TestClient(app) as client:
        yield client, _load("answers.json.gz")


def assert_kept(before: Any, now: Any, where: str) -> None:
    """Every value of the old answer is in the new one, unchanged: a newer release may add
    fields to an object (clients ignore what they do not know), never change or drop one."""
    if isinstance(before, dict):
        assert isinstance(now, dict), where
        for key, value in before.items():
            assert key in now, f"{where}.{key} was dropped"
            assert_kept(value, now[key], f"{where}.{key}")
    elif isinstance(before, list):
        assert isinstance(now, list) and len(now) == len(before), where
        for i, (old, new) in enumerate(zip(before, now, strict=True)):
            assert_kept(old, new, f"{where}[{i}]")
    else:
        assert now == before, where


def test_the_current_code_answers_as_the_release_that_wrote_the_store(
    served: tuple[TestClient, dict[str, Any]],
) -> None:
    client, before = served
    now = _answers(client, before["installation_id"], before["detail_slug"])
    for key in ("apps", "apps_search", "detail", "my_apps", "my_apps_cancelled", "incidents"):
        assert_kept(before[key], now[key], key)
    assert now["detail"]["optional_scopes"] == []  # listed before optional scopes existed
    for key in ("developer_installations", "record", "history", "state_v3"):
        assert now[key] == before[key], key
    # The log: the same stored events (the log-ins of each run come after them).
    assert now["log"]["items"][:EVENTS_WRITTEN] == before["log"]["items"][:EVENTS_WRITTEN]
    activity = [a["action"] for a in before["record"]["token_activity"]]
    assert activity == ["issued", "refreshed", "revoked", "revoked"]  # the last: a code replay
    assert len(before["history"]["items"]) > 100  # its snapshot was taken from old classes


def test_every_stored_event_and_snapshot_resolves_to_a_class(settings: Settings) -> None:
    store = build_store(settings)
    try:
        notifications = store.notifications(1, 10_000)
        assert len(notifications) == EVENTS_WRITTEN
        topics = {type(store.decode(n)).__qualname__ for n in notifications}
        assert {"EmailClaim.Claimed", "SlugClaim.Claimed", "InstallationSlot.Claimed"} <= topics
        assert {"SyncEventReceipt.Received", "TokenGrant.Refreshed"} <= topics
        installation = store.load_version(UUID(_load("answers.json.gz")["installation_id"]))
        assert installation is not None and installation.version > 100
    finally:
        store.close()


def test_replay_rebuilds_the_same_read_models(
    settings: Settings, served: tuple[TestClient, dict[str, Any]]
) -> None:
    store = build_store(settings)
    try:
        live = snapshot(read_side(store, settings))
        processes.replay(settings, None)
        assert snapshot(read_side(store, settings)) == live
        assert sum(len(rows) for rows in live.values()) > 300  # apps, installations, incidents…
    finally:
        store.close()


def test_every_operation_of_the_earlier_release_is_still_served(settings: Settings) -> None:
    before = _load("openapi.json.gz")
    now = create_app(settings).state.openapi
    for path, operations in before["paths"].items():
        for method, operation in operations.items():
            assert method in now["paths"].get(path, {}), (method, path)
            answers = now["paths"][path][method]["responses"]
            assert set(operation["responses"]) <= set(answers), (method, path)
