"""The `appstore` CLI: demo catalog, audit show, audit export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from appstore.bootstrap import build_store
from appstore.cli import cli
from appstore.demo import demo_listings
from appstore.settings import Settings, get_settings
from domain import values as v
from domain.app_listing import validate_listing


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("APPSTORE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("APPSTORE_FAST_PASSWORD_HASHING", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_demo_listings_cover_every_category_and_platform_and_are_valid() -> None:
    listings = demo_listings(72)
    assert len({item["name"] for item in listings}) == 72
    assert {c for item in listings for c in item["categories"]} == set(v.CATEGORIES)
    assert {p for item in listings for p in item["platforms"]} == set(v.PLATFORMS)
    for item in listings:
        validate_listing(item, partial=False)


def test_demo_loads_once_and_audit_reads_it_back(env: Settings) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--if-empty", "--apps", "60"])
    assert result.exit_code == 0, result.output
    store = build_store(env)
    head = store.application.recorder.max_notification_id()
    apps = [
        n
        for n in store.application.recorder.select_notifications(1, head)
        if n.topic.endswith("Listed")
    ]
    assert len(apps) == 60
    again = runner.invoke(cli, ["demo", "--if-empty"])
    assert again.exit_code == 0
    assert store.application.recorder.max_notification_id() == head

    shown = runner.invoke(cli, ["audit", "show", str(apps[0].originator_id)])
    assert shown.exit_code == 0, shown.output
    assert "AppListing.Listed" in shown.output

    exported = runner.invoke(cli, ["audit", "export", "--since", str(head - 5)])
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["position"] for line in lines] == list(range(head - 4, head + 1))
    assert {"aggregate_id", "version", "event_type", "timestamp", "payload"} <= set(lines[0])


def test_audit_show_of_an_unknown_id_fails_clearly(env: Settings) -> None:
    result = CliRunner().invoke(cli, ["audit", "show", "not-a-uuid"])
    assert result.exit_code == 2


def test_audit_export_redacts_hashes(env: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["demo", "--apps", "60"]).exit_code == 0
    exported = runner.invoke(cli, ["audit", "export"]).stdout
    assert "$argon2" not in exported
    registered = next(
        json.loads(line) for line in exported.splitlines() if "Account.Registered" in line
    )
    assert registered["payload"]["password_hash"] == "<redacted>"
