"""Accounts, listings, bad input and history round-trips, on both backends."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from application import accounts, installations, listings, notifications, sync_events, tokens
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain import errors
from domain.clock import FixedClock
from domain.errors import OAuthError
from domain.incident import SyncEvent
from domain.notification import NotificationRead, notification_read_id
from tests import factories as f


def stored_events(store: Store) -> list[Any]:
    return list(store.application.recorder.select_notifications(start=1, limit=1_000_000))


def test_sign_up_hashes_the_password_with_argon2(store: Store) -> None:
    outcome = accounts.register_account(
        store, "seller", "Ann@Shop.example.com", f.PASSWORD, "Ann", "cross_border"
    )
    account = accounts.account(store, outcome.id)
    assert account.email == "ann@shop.example.com"
    assert account.account_type == "cross_border"
    assert account.password_hash.startswith("$argon2id$")
    assert f.PASSWORD.encode() not in b"".join(n.state for n in stored_events(store))
    assert accounts.authenticate(store, "ann@shop.example.com", f.PASSWORD).id == outcome.id
    with pytest.raises(errors.InvalidCredentials):
        accounts.authenticate(store, "ann@shop.example.com", "wrong password!!")


def test_an_email_address_registers_once(store: Store) -> None:
    accounts.register_account(store, "seller", "bob@shop.example.com", f.PASSWORD, "Bob")
    with pytest.raises(errors.EmailTaken):
        accounts.register_account(store, "developer", "BOB@shop.example.com", f.PASSWORD, "Bob 2")


def test_sessions_open_with_the_token_and_end_on_logout(store: Store) -> None:
    accounts.register_account(store, "seller", "cy@shop.example.com", f.PASSWORD, "Cy")
    started = accounts.start_session(store, "cy@shop.example.com", f.PASSWORD)
    assert accounts.session_for(store, started.token) is not None
    assert started.token.encode() not in b"".join(n.state for n in stored_events(store))
    accounts.end_session(store, started.token)
    assert accounts.session_for(store, started.token) is None


def test_a_session_ended_by_another_process_closes_at_once(
    store: Store, settings: Settings, clock: FixedClock
) -> None:
    """Sessions are remembered per process: an end written elsewhere must still count."""
    accounts.register_account(store, "seller", "di@shop.example.com", f.PASSWORD, "Di")
    started = accounts.start_session(store, "di@shop.example.com", f.PASSWORD)
    assert accounts.session_for(store, started.token) is not None  # now remembered here
    other = build_store(settings, clock=clock)
    try:
        accounts.end_session(other, started.token)
    finally:
        other.close()
    assert accounts.session_for(store, started.token) is None
    clock.advance(accounts.SESSION_LIFETIME)
    again = accounts.start_session(store, "di@shop.example.com", f.PASSWORD)
    assert accounts.session_for(store, again.token) is not None
    clock.advance(accounts.SESSION_LIFETIME)  # a remembered session still expires
    assert accounts.session_for(store, again.token) is None


def test_listing_returns_a_client_secret_once_and_stores_only_its_hash(store: Store) -> None:
    developer = f.developer(store)
    listed = listings.list_app(store, developer, f.listing(name="Parcel Pro"))
    app = listings.app(store, listed.id)
    assert app.details["slug"] == "parcel-pro"
    assert listed.client_id == app.client_id
    assert listed.client_secret.encode() not in b"".join(n.state for n in stored_events(store))
    assert tokens.authenticate_client(store, listed.client_id, listed.client_secret).id == app.id
    with pytest.raises(OAuthError):
        tokens.authenticate_client(store, listed.client_id, "cs_wrong")


def test_slugs_are_unique(store: Store) -> None:
    developer = f.developer(store)
    listings.list_app(store, developer, f.listing(slug="ship-it"))
    with pytest.raises(errors.SlugTaken):
        listings.list_app(store, developer, f.listing(slug="ship-it"))
    other = listings.list_app(store, developer, f.listing(slug="ship-it-two")).id
    with pytest.raises(errors.SlugTaken):
        listings.update_app(store, developer, other, {"slug": "ship-it"})


def test_a_changed_slug_frees_the_old_one(store: Store) -> None:
    developer, rival = f.developer(store), f.developer(store)
    first = listings.list_app(store, developer, f.listing(slug="parcel-pro")).id
    listings.update_app(store, developer, first, {"slug": "parcel-pro-2"})
    with pytest.raises(errors.SlugTaken):  # the new slug is held ...
        listings.list_app(store, rival, f.listing(slug="parcel-pro-2"))
    taken = listings.list_app(store, rival, f.listing(slug="parcel-pro")).id  # ... the old is free
    assert listings.app(store, taken).details["slug"] == "parcel-pro"
    with pytest.raises(errors.SlugTaken):  # and held again by its new owner
        listings.update_app(store, developer, first, {"slug": "parcel-pro"})
    listings.update_app(store, rival, taken, {"slug": "parcel-go"})
    listings.update_app(store, developer, first, {"slug": "parcel-pro"})  # back to its first
    assert listings.app(store, first).details["slug"] == "parcel-pro"
    with pytest.raises(errors.SlugTaken):
        listings.list_app(store, rival, f.listing(slug="parcel-pro"))
    listings.list_app(store, rival, f.listing(slug="parcel-pro-2"))


def test_only_the_owner_changes_or_delists_an_app(store: Store) -> None:
    owner, other = f.developer(store), f.developer(store)
    app_id = f.app(store, owner)
    with pytest.raises(errors.AppNotFound):
        listings.update_app(store, other, app_id, {"tagline": "hijacked"})
    with pytest.raises(errors.AppNotFound):
        listings.delist_app(store, other, app_id)
    listings.update_app(store, owner, app_id, {"tagline": "Faster than ever"})
    assert listings.app(store, app_id).details["tagline"] == "Faster than ever"
    listings.delist_app(store, owner, app_id)
    assert not listings.app(store, app_id).is_listed


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
    store: Store, override: dict[str, Any], error: type[errors.InvalidInput], field: str
) -> None:
    developer = f.developer(store)
    head = store.application.recorder.max_notification_id()
    with pytest.raises(error) as raised:
        listings.list_app(store, developer, f.listing(**override))
    assert raised.value.field == field
    assert store.application.recorder.max_notification_id() == head


def test_bad_command_input_is_a_named_error_and_leaves_history_unchanged(
    store: Store, clock: FixedClock
) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app)
    head = store.application.recorder.max_notification_id()
    bad_calls = [
        (
            errors.InvalidDuration,
            lambda: installations.install(
                store, seller, app, "7d", "a@b.example.com", "+14155550100"
            ),
        ),
        (
            errors.InvalidEmail,
            lambda: installations.install(
                store, seller, app, "30d", "not-an-email", "+14155550100"
            ),
        ),
        (
            errors.InvalidPhone,
            lambda: installations.install(store, seller, app, "30d", "a@b.example.com", "call me"),
        ),
        (
            errors.InvalidDuration,
            lambda: installations.renew(store, seller, installation_id, "forever"),
        ),
        (
            errors.InvalidInput,
            lambda: accounts.register_account(store, "admin", "x@y.example.com", f.PASSWORD, "X"),
        ),
        (
            errors.WeakPassword,
            lambda: accounts.register_account(store, "seller", "x@y.example.com", "short", "X"),
        ),
        (
            errors.InvalidInput,
            lambda: accounts.register_account(
                store, "seller", "x@y.example.com", f.PASSWORD, "X", "galactic"
            ),
        ),
        (
            errors.InvalidInput,
            lambda: sync_events.record_sync_event(
                store, SyncEvent("", installation_id, "failure", "orders", clock.now(), "E")
            ),
        ),
        (
            errors.InvalidInput,
            lambda: sync_events.record_sync_event(
                store, SyncEvent("e", installation_id, "maybe", "orders", clock.now(), "E")
            ),
        ),
        (
            errors.InvalidInput,
            lambda: sync_events.record_sync_event(
                store, SyncEvent("e", installation_id, "failure", "orders", clock.now(), "")
            ),
        ),
        (errors.InstallationNotFound, lambda: installations.cancel(store, seller, app)),
        (
            errors.AppNotFound,
            lambda: installations.install(
                store, seller, installation_id, "30d", "a@b.example.com", "+14155550100"
            ),
        ),
    ]
    for error, call in bad_calls:
        with pytest.raises(error):
            call()
    assert store.application.recorder.max_notification_id() == head


def test_history_round_trip_gives_the_same_state(store: Store, clock: FixedClock) -> None:
    seller, app = f.seller(store), f.app(store)
    installation_id = f.active_installation(store, seller, app, "90d")
    sync_events.record_sync_event(
        store, SyncEvent("e1", installation_id, "failure", "orders", clock.now(), "E", "m", ["o"])
    )
    installations.renew(store, seller, installation_id, "365d")
    live = installations.installation(store, installation_id)
    # A second application on the same database reconstitutes from stored events only.
    again = Store(
        dict(store.application.env.items()) if hasattr(store.application.env, "items") else None,
        clock=clock,
    )
    reloaded = installations.installation(again, installation_id)
    assert reloaded.__dict__ == live.__dict__
    assert [e.originator_version for e in again.application.events.get(installation_id)] == list(
        range(1, live.version + 1)
    )
    # Historical state at a version.
    at_authorize = again.application.repository.get(installation_id, version=2)
    assert at_authorize.status.value == "active" and at_authorize.duration.value == "90d"
    again.close()


def test_two_log_ins_that_both_upgrade_the_password_hash_both_succeed(
    store: Store, settings: Settings, clock: FixedClock
) -> None:
    accounts.register_account(store, "seller", "race@shop.example.com", f.PASSWORD, "Race")
    stronger = settings.model_copy(update={"fast_password_hashing": False})
    first, second = build_store(stronger, clock=clock), build_store(stronger, clock=clock)
    hash_password = first.passwords.hash

    def hash_while_another_log_in_wins(password: str) -> str:
        upgraded = hash_password(password)
        accounts.authenticate(
            second, "race@shop.example.com", f.PASSWORD
        )  # commits its rehash first
        return upgraded

    first.passwords.hash = hash_while_another_log_in_wins  # type: ignore[method-assign]
    account = accounts.authenticate(first, "race@shop.example.com", f.PASSWORD)
    assert not first.passwords.needs_rehash(accounts.account(first, account.id).password_hash)
    first.close()
    second.close()


def test_marking_all_notifications_read_is_one_write_and_survives_one_marked_meanwhile(
    store: Store,
) -> None:
    seller = f.seller(store)
    ids = [uuid4() for _ in range(3)]
    first = notifications.mark_all_read(store, seller, ids[:2])
    assert first is not None and store.head() == first  # one write for both
    assert notifications.mark_all_read(store, seller, []) is None
    # ids[1] is marked already: the joint write collides, each is then marked on its own.
    last = notifications.mark_all_read(store, seller, ids[1:])
    assert last is not None and last > first
    for notification_id in ids:
        mark = store.load(notification_read_id(notification_id), NotificationRead)
        assert mark is not None and mark.seller_id == seller
