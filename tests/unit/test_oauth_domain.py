"""OAuth 2.0 in the domain: codes, PKCE, rotating refresh tokens, revocation, typed reasons."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest

from api.tokens import introspection
from application import authorization, installations, listings, tokens
from application.store import Store
from appstore.bootstrap import event_store_env
from appstore.settings import Settings
from domain.app_listing import AppListing
from domain.clock import FixedClock
from domain.credentials import Passwords
from domain.errors import OAuthError
from domain.installation import Installation
from projections.authorization_record import authorization_record
from tests import factories as f

REDIRECT = "https://ordersync.example.com/oauth/callback"


def challenge_for(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


VERIFIER = "v" * 50


class World:
    """A listed app, a seller with a live installation of it, and the client credentials."""

    def __init__(self, store: Store) -> None:
        self.store = store
        developer = f.developer(store)
        listed = listings.list_app(store, developer, f.listing())
        self.app_id = listed.id
        self.client_id = listed.client_id
        self.client_secret = listed.client_secret
        self.seller = f.seller(store)
        self.installation = f.active_installation(store, self.seller, self.app_id)

    @property
    def client(self) -> AppListing:
        return tokens.authenticate_client(self.store, self.client_id, self.client_secret)

    def request(self, **overrides: str | None) -> authorization.AuthorizationRequest:
        params: dict[str, str | None] = {
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "orders.read",
            "state": "xyz",
            "code_challenge": challenge_for(VERIFIER),
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return authorization.check_authorization_request(self.store, **params)

    def code(self, **overrides: str | None) -> str:
        return authorization.issue_code(
            self.store, self.seller, self.installation, self.request(**overrides)
        ).code

    def token_set(self) -> tokens.TokenSet:
        return tokens.exchange_code(self.store, self.client, self.code(), REDIRECT, VERIFIER)


@pytest.fixture
def world(store: Store) -> World:
    return World(store)


def test_code_exchange_issues_tokens_for_the_installation(world: World) -> None:
    issued = world.token_set()
    assert issued.installation_id == world.installation
    assert issued.scopes == ["orders.read"]
    assert issued.expires_in == 3600
    check = tokens.check_access_token(world.store, issued.access_token, "orders.read")
    assert check.active and check.installation_id == world.installation
    assert check.seller_id == world.seller


def test_unknown_client_and_wrong_redirect_uri_are_not_redirectable(world: World) -> None:
    with pytest.raises(OAuthError) as unknown:
        world.request(client_id="app_" + "0" * 32)
    assert not unknown.value.redirectable
    with pytest.raises(OAuthError) as wrong:
        world.request(redirect_uri=REDIRECT + "/other")
    assert not wrong.value.redirectable
    with pytest.raises(OAuthError) as prefix:
        world.request(redirect_uri=REDIRECT + "?x=1")
    assert not prefix.value.redirectable


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "finance.read"}, "invalid_scope"),
        ({"scope": "nonsense"}, "invalid_scope"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
    ],
)
def test_bad_requests_are_redirectable_errors(
    world: World, overrides: dict[str, str], error: str
) -> None:
    with pytest.raises(OAuthError) as raised:
        world.request(**overrides)
    assert raised.value.error == error and raised.value.redirectable


def test_code_is_single_use_and_a_replay_revokes_what_it_issued(world: World) -> None:
    code = world.code()
    issued = tokens.exchange_code(world.store, world.client, code, REDIRECT, VERIFIER)
    with pytest.raises(OAuthError) as replay:
        tokens.exchange_code(world.store, world.client, code, REDIRECT, VERIFIER)
    assert replay.value.error == "invalid_grant"
    assert tokens.check_access_token(world.store, issued.access_token).reason == "revoked"
    assert tokens.check_token(world.store, issued.refresh_token).reason == "revoked"


def test_expired_code_is_refused(world: World, clock: FixedClock) -> None:
    code = world.code()
    clock.advance(timedelta(minutes=10))
    with pytest.raises(OAuthError, match="expired") as raised:
        tokens.exchange_code(world.store, world.client, code, REDIRECT, VERIFIER)
    assert raised.value.error == "invalid_grant"


def test_code_is_bound_to_redirect_uri_client_and_pkce(world: World) -> None:
    code = world.code()
    with pytest.raises(OAuthError, match="redirect_uri"):
        tokens.exchange_code(world.store, world.client, code, REDIRECT + "x", VERIFIER)
    with pytest.raises(OAuthError, match="code_verifier"):
        tokens.exchange_code(world.store, world.client, code, REDIRECT, "w" * 50)
    with pytest.raises(OAuthError, match="code_verifier"):
        tokens.exchange_code(world.store, world.client, code, REDIRECT, None)
    other = World(world.store)
    with pytest.raises(OAuthError, match="unknown"):
        tokens.exchange_code(world.store, other.client, code, REDIRECT, VERIFIER)
    # none of the failures spent the code
    assert tokens.exchange_code(world.store, world.client, code, REDIRECT, VERIFIER).access_token


def test_verifier_without_challenge_is_a_downgrade(world: World) -> None:
    code = world.code(code_challenge=None, code_challenge_method=None)
    with pytest.raises(OAuthError, match="no code_challenge"):
        tokens.exchange_code(world.store, world.client, code, REDIRECT, VERIFIER)
    assert tokens.exchange_code(world.store, world.client, code, REDIRECT, None).access_token


def test_wrong_client_secret_is_invalid_client(world: World) -> None:
    with pytest.raises(OAuthError) as raised:
        tokens.authenticate_client(world.store, world.client_id, "cs_wrong")
    assert raised.value.error == "invalid_client"  # the API answers it with 401


def test_refresh_rotates_and_grace_then_reuse_revokes_the_chain(
    world: World, clock: FixedClock
) -> None:
    first = world.token_set()
    second = tokens.refresh_tokens(world.store, world.client, first.refresh_token)
    assert second.refresh_token != first.refresh_token
    # inside the grace window the previous refresh token still works (lost response)
    clock.advance(timedelta(seconds=30))
    third = tokens.refresh_tokens(world.store, world.client, first.refresh_token)
    assert tokens.check_token(world.store, third.refresh_token).active
    # after it, reusing an old refresh token revokes every token of the chain
    clock.advance(timedelta(minutes=5))
    with pytest.raises(OAuthError, match="already used"):
        tokens.refresh_tokens(world.store, world.client, second.refresh_token)
    for token in (third.access_token, third.refresh_token, first.access_token):
        assert tokens.check_token(world.store, token).reason == "revoked"
    with pytest.raises(OAuthError):
        tokens.refresh_tokens(world.store, world.client, third.refresh_token)


def test_refresh_can_narrow_scope_but_not_widen(world: World) -> None:
    listed = listings.list_app(world.store, f.developer(world.store), f.listing())
    seller = f.seller(world.store)
    installation = f.active_installation(world.store, seller, listed.id)
    client = tokens.authenticate_client(world.store, listed.client_id, listed.client_secret)
    request = authorization.check_authorization_request(
        world.store,
        client_id=listed.client_id,
        redirect_uri=REDIRECT,
        response_type="code",
        scope=None,
        state=None,
        code_challenge=None,
        code_challenge_method=None,
    )
    code = authorization.issue_code(world.store, seller, installation, request).code
    issued = tokens.exchange_code(world.store, client, code, REDIRECT, None)
    assert issued.scopes == ["orders.read", "fulfillment.write"]
    narrowed = tokens.refresh_tokens(world.store, client, issued.refresh_token, "orders.read")
    assert narrowed.scopes == ["orders.read"]
    with pytest.raises(OAuthError) as widened:
        tokens.refresh_tokens(world.store, client, narrowed.refresh_token, "finance.read")
    assert widened.value.error == "invalid_scope"


def test_access_token_expires_after_an_hour(world: World, clock: FixedClock) -> None:
    issued = world.token_set()
    clock.advance(timedelta(minutes=59))
    assert tokens.check_access_token(world.store, issued.access_token).active
    clock.advance(timedelta(minutes=1))
    assert tokens.check_access_token(world.store, issued.access_token).reason == "expired"
    # the refresh token still works
    assert tokens.refresh_tokens(world.store, world.client, issued.refresh_token).access_token


def test_cancel_revokes_every_token_at_once(world: World) -> None:
    issued = world.token_set()
    more = tokens.refresh_tokens(world.store, world.client, issued.refresh_token)
    installations.cancel(world.store, world.seller, world.installation)
    for token in (issued.access_token, more.access_token, more.refresh_token):
        assert tokens.check_token(world.store, token).reason == "cancelled"
    with pytest.raises(OAuthError):
        tokens.refresh_tokens(world.store, world.client, more.refresh_token)


def test_expiry_stops_tokens_and_renewal_restores_them(world: World, clock: FixedClock) -> None:
    issued = world.token_set()
    clock.advance(timedelta(days=30))
    assert tokens.check_token(world.store, issued.refresh_token).reason == "installation_expired"
    with pytest.raises(OAuthError):
        tokens.refresh_tokens(world.store, world.client, issued.refresh_token)
    installations.renew(world.store, world.seller, world.installation, "90d")
    fresh = tokens.refresh_tokens(world.store, world.client, issued.refresh_token)
    assert tokens.check_access_token(world.store, fresh.access_token).active


def test_missing_scope_is_a_typed_failure(world: World) -> None:
    issued = world.token_set()
    check = tokens.check_access_token(world.store, issued.access_token, "orders.write")
    assert not check.active and check.reason == "insufficient_scope"
    assert tokens.check_access_token(world.store, issued.refresh_token).reason == "unknown"
    assert tokens.check_access_token(world.store, "at_nope").reason == "unknown"
    assert tokens.check_access_token(world.store, None).reason == "unknown"


def test_revoking_an_access_token_or_a_refresh_token(world: World) -> None:
    issued = world.token_set()
    other = world.token_set()
    tokens.revoke_token(world.store, world.client, issued.access_token)
    assert tokens.check_token(world.store, issued.access_token).reason == "revoked"
    assert tokens.check_token(world.store, issued.refresh_token).active
    tokens.revoke_token(world.store, world.client, issued.refresh_token)
    assert tokens.check_token(world.store, issued.refresh_token).reason == "revoked"
    assert tokens.check_token(world.store, other.access_token).active
    # unknown issued and another client's issued are ignored (RFC 7009 §2.2)
    assert tokens.revoke_token(world.store, world.client, "rt_unknown") is None
    stranger = World(world.store)
    assert tokens.revoke_token(world.store, stranger.client, other.access_token) is None
    assert tokens.check_token(world.store, other.access_token).active


def test_introspection_hides_other_clients_tokens(world: World) -> None:
    issued = world.token_set()
    stranger = World(world.store)
    assert (
        tokens.check_token(world.store, issued.access_token, client=stranger.client)
        == tokens.UNKNOWN
    )
    check = tokens.check_token(world.store, issued.access_token, client=world.client)
    body = introspection(check, world.client_id)
    assert body["active"] is True and body["installation_id"] == str(world.installation)
    assert body["scope"] == "orders.read" and body["client_id"] == world.client_id


def test_authorization_record_lists_token_activity(world: World) -> None:
    issued = world.token_set()
    tokens.refresh_tokens(world.store, world.client, issued.refresh_token)
    tokens.revoke_token(world.store, world.client, issued.access_token)
    record = authorization_record(world.store, world.seller, world.installation)
    assert [a["action"] for a in record["token_activity"]] == ["issued", "refreshed", "revoked"]
    assert [h["event"] for h in record["history"]] == ["Installed", "Authorized"]
    assert record["scopes"][0]["scope"] == "orders.read"
    assert record["authorized_by"]["seller_id"] == str(world.seller)


def test_no_token_or_code_is_stored_in_clear(world: World) -> None:
    code = world.code()
    issued = tokens.exchange_code(world.store, world.client, code, REDIRECT, VERIFIER)
    refreshed = tokens.refresh_tokens(world.store, world.client, issued.refresh_token)
    secrets = [
        code,
        issued.access_token,
        issued.refresh_token,
        refreshed.access_token,
        refreshed.refresh_token,
        world.client_secret,
    ]
    stored = world.store.application.recorder.select_notifications(1, 10_000)
    assert stored
    blob = b"".join(n.state for n in stored)
    for secret in secrets:
        assert secret.encode() not in blob


def test_code_only_for_the_sellers_own_live_installation(world: World) -> None:
    intruder = f.seller(world.store)
    with pytest.raises(Exception, match="not found"):
        authorization.issue_code(world.store, intruder, world.installation, world.request())
    installations.cancel(world.store, world.seller, world.installation)
    with pytest.raises(OAuthError) as raised:
        world.code()
    assert raised.value.error == "access_denied"


def test_with_the_aggregate_cache_a_cancel_elsewhere_is_seen_at_once(
    store: Store, settings: Settings, clock: FixedClock
) -> None:
    """Safety of the store's aggregate cache (as serve has it) for token checks: loads
    fast-forward every time."""
    cached = Store(
        event_store_env(settings.database_url),
        clock=clock,
        passwords=Passwords.fast(),
        aggregate_cache=1000,
    )
    try:
        world = World(store)
        issued = world.token_set()
        assert tokens.check_access_token(cached, issued.access_token).active
        installations.cancel(store, world.seller, world.installation)  # another process, say
        assert tokens.check_access_token(cached, issued.access_token).reason == "cancelled"
        other = World(store)
        more = other.token_set()
        assert tokens.check_access_token(cached, more.access_token).active
        tokens.revoke_token(store, other.client, more.refresh_token)
        assert tokens.check_access_token(cached, more.access_token).reason == "revoked"
    finally:
        cached.close()


def test_a_checking_process_sees_changes_written_elsewhere_at_once(
    store: Store, settings: Settings, clock: FixedClock
) -> None:
    """Store.current keeps the grant and installation a check read: a newer event written
    by another process (cancel, revoke, renew, a scope revoked) must still count."""
    checker = Store(event_store_env(settings.database_url), clock=clock, passwords=Passwords.fast())
    try:
        world = World(store)
        issued = world.token_set()
        assert tokens.check_access_token(checker, issued.access_token).active  # now kept
        assert tokens.check_access_token(checker, issued.access_token).active  # from the copy
        tokens.revoke_token(store, world.client, issued.access_token)
        assert tokens.check_access_token(checker, issued.access_token).reason == "revoked"
        fresh = world.token_set()
        assert tokens.check_access_token(checker, fresh.access_token).active
        clock.advance(timedelta(days=30))
        assert tokens.check_token(checker, fresh.refresh_token).reason == "installation_expired"
        installations.renew(store, world.seller, world.installation, "90d")
        assert tokens.check_token(checker, fresh.refresh_token).active
        installations.cancel(store, world.seller, world.installation)
        assert tokens.check_token(checker, fresh.refresh_token).reason == "cancelled"
    finally:
        checker.close()


def test_a_check_of_kept_copies_asks_the_log_once(
    store: Store, settings: Settings, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installation and grant a process keeps are checked for newer events in ONE read
    (`Store.changed` over both), and nothing is replayed while neither has one (where the
    log keeps no facts for the token: SQLite, a token issued before they were kept)."""
    checker = Store(event_store_env(settings.database_url), clock=clock, passwords=Passwords.fast())
    monkeypatch.setattr(checker, "access_facts", lambda token_id: None)
    try:
        world = World(store)
        issued = world.token_set()
        assert tokens.check_access_token(checker, issued.access_token).active  # now kept
        asked: list[set[object]] = []
        changed, load = checker.changed, checker.load
        monkeypatch.setattr(checker, "changed", lambda v: asked.append(set(v)) or changed(v))
        loads: list[object] = []
        monkeypatch.setattr(checker, "load", lambda i, k: loads.append(i) or load(i, k))
        assert tokens.check_access_token(checker, issued.access_token).active
        assert len(asked) == 1 and len(asked[0]) == 2  # installation and grant together
        assert loads == []
        tokens.revoke_token(store, world.client, issued.access_token)
        assert tokens.check_access_token(checker, issued.access_token).reason == "revoked"
        assert len(loads) == 1  # only the grant, which changed, is read again
    finally:
        checker.close()


def test_changed_names_the_aggregates_with_a_newer_event(world: World) -> None:
    store = world.store
    installation = store.load(world.installation, Installation)
    listing = store.load(world.app_id, AppListing)
    assert installation is not None and listing is not None
    versions = {installation.id: installation.version, listing.id: listing.version}
    assert store.changed(versions) == set()
    assert store.changed({}) == set()
    installations.renew(store, world.seller, world.installation, "90d")
    assert store.changed(versions) == {installation.id}
    assert store.changed({installation.id: installation.version + 1}) == set()


def test_a_store_that_forgets_reads_everything_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Store.forget` (the benches' cold process): nothing kept is served afterwards (the
    kept copies of checks that read no facts: SQLite, tokens issued before they were kept)."""
    monkeypatch.setattr(world.store, "access_facts", lambda token_id: None)
    issued = world.token_set()
    assert tokens.check_access_token(world.store, issued.access_token).active
    loads: list[object] = []
    load = world.store.load
    monkeypatch.setattr(world.store, "load", lambda i, k: loads.append(k) or load(i, k))
    assert tokens.check_access_token(world.store, issued.access_token).active
    assert loads == []
    world.store.forget()
    assert tokens.check_access_token(world.store, issued.access_token).active
    assert len(loads) == 3  # the token record, its installation and its grant
