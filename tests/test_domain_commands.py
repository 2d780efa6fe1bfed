"""Accounts, listings, bad input and history round-trips, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from appstore.settings import Settings
from appstore.wiring import build_store
from domain import errors
from domain.clock import FixedClock
from domain.store import AppStore, SyncEvent
from tests import factories as f


def stored_events(store: AppStore) -> list[Any]:
    return list(store.recorder.select_notifications(start=1, limit=1_000_000))


def test_sign_up_hashes_the_password_with_argon2(store: AppStore) -> None:
    outcome = store.register_account(
        "seller", "Ann@Shop.example.com", f.PASSWORD, "Ann", "cross_border"
    )
    account = store.account(outcome.id)
    assert account.email == "ann@shop.example.com"
    assert account.account_type == "cross_border"
    assert account.password_hash.startswith("$argon2id$")
    assert f.PASSWORD.encode() not in b"".join(n.state for n in stored_events(store))
    assert store.authenticate("ann@shop.example.com", f.PASSWORD).id == outcome.id
    with pytest.raises(errors.InvalidCredentials):
        store.authenticate("ann@shop.example.com", "wrong password!!")


def test_an_email_address_registers_once(store: AppStore) -> None:
    store.register_account("seller", "bob@shop.example.com", f.PASSWORD, "Bob")
    with pytest.raises(errors.EmailTaken):
        store.register_account("developer", "BOB@shop.example.com", f.PASSWORD, "Bob 2")


def test_sessions_open_with_the_token_and_end_on_logout(store: AppStore) -> None:
    store.register_account("seller", "cy@shop.example.com", f.PASSWORD, "Cy")
    started = store.start_session("cy@shop.example.com", f.PASSWORD)
    assert store.session_for(started.token) is not None
    assert started.token.encode() not in b"".join(n.state for n in stored_events(store))
    store.end_session(started.token)
    assert store.session_for(started.token) is None


def test_listing_returns_a_client_secret_once_and_stores_only_its_hash(store: AppStore) -> None:
    developer = f.developer(store)
    listed = store.list_app(developer, f.listing(name="Parcel Pro"))
    app = store.app(listed.id)
    assert app.details["slug"] == "parcel-pro"
    assert listed.client_id == app.client_id
    assert listed.client_secret.encode() not in b"".join(n.state for n in stored_events(store))
    assert store.authenticate_client(listed.client_id, listed.client_secret) is not None
    assert store.authenticate_client(listed.client_id, "cs_wrong") is None


def test_slugs_are_unique(store: AppStore) -> None:
    developer = f.developer(store)
    store.list_app(developer, f.listing(slug="ship-it"))
    with pytest.raises(errors.SlugTaken):
        store.list_app(developer, f.listing(slug="ship-it"))
    other = store.list_app(developer, f.listing(slug="ship-it-two")).id
    with pytest.raises(errors.SlugTaken):
        store.update_app(developer, other, {"slug": "ship-it"})


def test_only_the_owner_changes_or_delists_an_app(store: AppStore) -> None:
    owner, other = f.developer(store), f.developer(store)
    app_id = f.app(store, owner)
    with pytest.raises(errors.AppNotFound):
        store.update_app(other, app_id, {"tagline": "hijacked"})
    with pytest.raises(errors.AppNotFound):
        store.delist_app(other, app_id)
    store.update_app(owner, app_id, {"tagline": "Faster than ever"})
    assert store.app(app_id).details["tagline"] == "Faster than ever"
    store.delist_app(owner, app_id)
    assert not store.app(app_id).is_listed


BAD_LISTINGS = [
    ({"categories": ["gardening"]}, errors.UnknownCategory, "categories"),
    ({"platforms": ["myspace"]}, errors.UnknownPlatform, "platforms"),
    ({"scopes": []}, errors.InvalidInput, "scopes"),
    ({"scopes": ["root.write"]}, errors.UnknownScope, "scopes"),
    ({"partner_url": "http://evil.example.com"}, errors.InvalidUrl, "partner_url"),
    ({"redirect_uris": ["https://a.example.com/cb#frag"]}, errors.InvalidUrl, "redirect_uris[0]"),
    ({"redirect_uris": []}, errors.InvalidInput, "redirect_uris"),
    ({"contact": {"email": "nope", "phone": "+14155550100"}}, errors.InvalidEmail, "contact.email"),
    (
        {"contact": {"email": "a@b.example.com", "phone": "555"}},
        errors.InvalidPhone,
        "contact.phone",
    ),
    ({"durations": ["7d"]}, errors.InvalidDuration, "durations[0]"),
    ({"name": ""}, errors.InvalidInput, "name"),
    ({"name": 42}, errors.InvalidInput, "name"),
    (
        {"media": [{"type": "gif", "url": "https://x.example.com"}]},
        errors.InvalidInput,
        "media[0].type",
    ),
    ({"slug": "Not A Slug"}, errors.InvalidInput, "slug"),
    ({"colour": "red"}, errors.InvalidInput, "colour"),
]


@pytest.mark.parametrize(("override", "error", "field"), BAD_LISTINGS)
def test_bad_listing_input_is_a_named_error_and_stores_nothing(
    store: AppStore, override: dict[str, Any], error: type[errors.InvalidInput], field: str
) -> None:
    developer = f.developer(store)
    head = store.recorder.max_notification_id()
    with pytest.raises(error) as raised:
        store.list_app(developer, f.listing(**override))
    assert raised.value.field == field
    assert store.recorder.max_notification_id() == head


def test_bad_command_input_is_a_named_error_and_leaves_history_unchanged(
    store: AppStore, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    head = store.recorder.max_notification_id()
    bad_calls = [
        (
            errors.InvalidDuration,
            lambda: store.install(seller, app, "7d", "a@b.example.com", "+14155550100"),
        ),
        (
            errors.InvalidEmail,
            lambda: store.install(seller, app, "30d", "not-an-email", "+14155550100"),
        ),
        (
            errors.InvalidPhone,
            lambda: store.install(seller, app, "30d", "a@b.example.com", "call me"),
        ),
        (errors.InvalidDuration, lambda: store.renew(seller, installation_id, "forever")),
        (
            errors.InvalidInput,
            lambda: store.register_account("admin", "x@y.example.com", f.PASSWORD, "X"),
        ),
        (
            errors.WeakPassword,
            lambda: store.register_account("seller", "x@y.example.com", "short", "X"),
        ),
        (
            errors.InvalidInput,
            lambda: store.register_account(
                "seller", "x@y.example.com", f.PASSWORD, "X", "galactic"
            ),
        ),
        (
            errors.InvalidInput,
            lambda: store.record_sync_event(
                SyncEvent("", installation_id, "failure", "orders", clock.now(), "E")
            ),
        ),
        (
            errors.InvalidInput,
            lambda: store.record_sync_event(
                SyncEvent("e", installation_id, "maybe", "orders", clock.now(), "E")
            ),
        ),
        (
            errors.InvalidInput,
            lambda: store.record_sync_event(
                SyncEvent("e", installation_id, "failure", "orders", clock.now(), "")
            ),
        ),
        (errors.InstallationNotFound, lambda: store.cancel(seller, app)),
        (
            errors.AppNotFound,
            lambda: store.install(
                seller, installation_id, "30d", "a@b.example.com", "+14155550100"
            ),
        ),
    ]
    for error, call in bad_calls:
        with pytest.raises(error):
            call()
    assert store.recorder.max_notification_id() == head


def test_history_round_trip_gives_the_same_state(store: AppStore, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app, "90d")
    store.record_sync_event(
        SyncEvent("e1", installation_id, "failure", "orders", clock.now(), "E", "m", ["o"])
    )
    store.renew(seller, installation_id, "365d")
    live = store.installation(installation_id)
    # A second application on the same database reconstitutes from stored events only.
    again = AppStore(dict(store.env.items()) if hasattr(store.env, "items") else None, clock=clock)
    reloaded = again.installation(installation_id)
    assert reloaded.__dict__ == live.__dict__
    assert [e.originator_version for e in again.events.get(installation_id)] == list(
        range(1, live.version + 1)
    )
    # Historical state at a version.
    at_authorize = again.repository.get(installation_id, version=2)
    assert at_authorize.status.value == "active" and at_authorize.duration.value == "90d"
    again.close()


def test_two_log_ins_that_both_upgrade_the_password_hash_both_succeed(
    store: AppStore, settings: Settings, clock: FixedClock
) -> None:
    store.register_account("seller", "race@shop.example.com", f.PASSWORD, "Race")
    stronger = settings.model_copy(update={"fast_password_hashing": False})
    first, second = build_store(stronger, clock=clock), build_store(stronger, clock=clock)
    hash_password = first.passwords.hash

    def hash_while_another_log_in_wins(password: str) -> str:
        upgraded = hash_password(password)
        second.authenticate("race@shop.example.com", f.PASSWORD)  # commits its rehash first
        return upgraded

    first.passwords.hash = hash_while_another_log_in_wins  # type: ignore[method-assign]
    account = first.authenticate("race@shop.example.com", f.PASSWORD)
    assert not first.passwords.needs_rehash(first.account(account.id).password_hash)
    first.close()
    second.close()
