"""Consent per scope: the Installation's consent events, the rules of domain/consent.py, and the
use cases (install, authorize, grant, revoke, codes and tokens) through the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application import authorization, installations, listings, tokens
from application.store import Store
from domain.errors import (
    InstallationNotActive,
    InvalidInput,
    OAuthError,
    RequiredScope,
    ScopeNotGranted,
    UnknownScope,
)
from domain.installation import Installation
from domain.values import SCOPES
from tests import factories as f

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SELLER = uuid4()
REQUIRED = ["fulfillment.write"]
OPTIONAL = ["orders.read", "inventory.read", "customers.read"]
REDIRECT = "https://ordersync.example.com/oauth/callback"


def pending(scopes: list[str] | None = None) -> Installation:
    return Installation(
        seller_id=SELLER,
        app_id=uuid4(),
        duration="30d",
        contact_email="a@b.co",
        contact_phone="+14155550100",
        scopes=scopes or ["orders.read", "fulfillment.write", "inventory.read"],
        installed_at=NOW,
        via="store",
    )


def replayed(installation: Installation) -> Installation:
    """The installation rebuilt from its events alone."""
    events = installation.collect_events()
    rebuilt: Installation = reduce(lambda state, e: e.mutate(state), events, None)
    return rebuilt


# --- the aggregate --------------------------------------------------------------------------
def test_authorizing_may_leave_out_optional_scopes_and_records_what_was_consented() -> None:
    installation = pending()
    installation.authorize(NOW, ["fulfillment.write", "inventory.read"], REQUIRED)
    assert installation.scopes == ["fulfillment.write", "inventory.read"]
    (authorized,) = [
        e for e in installation.collect_events() if isinstance(e, Installation.Authorized)
    ]
    assert authorized.scopes == ["fulfillment.write", "inventory.read"]


def test_authorizing_without_a_choice_grants_every_scope_asked() -> None:
    installation = pending()
    installation.authorize(NOW)
    assert installation.scopes == ["orders.read", "fulfillment.write", "inventory.read"]


@pytest.mark.parametrize(
    ("kept", "error"),
    [
        (["orders.read"], RequiredScope),  # the required one left out
        (["fulfillment.write", "finance.read"], InvalidInput),  # never asked for
    ],
)
def test_authorizing_keeps_every_required_scope_and_nothing_unasked(
    kept: list[str], error: type[Exception]
) -> None:
    installation = pending()
    with pytest.raises(error):
        installation.authorize(NOW, kept, REQUIRED)
    assert installation.status.value == "pending_authorization"


def test_an_authorization_keeping_nothing_is_refused() -> None:
    installation = pending(["orders.read"])
    with pytest.raises(InvalidInput) as refused:
        installation.authorize(NOW, [], REQUIRED)
    assert refused.value.field == "scopes"


def test_granting_and_revoking_say_who_did_what_and_when() -> None:
    installation = pending(["fulfillment.write"])
    installation.authorize(NOW)
    later = NOW + timedelta(days=1)
    assert installation.grant_scopes(["orders.read", "fulfillment.write"], later, SELLER) == [
        "orders.read"
    ]
    assert installation.grant_scopes(["orders.read"], later, SELLER) == []  # nothing new
    installation.revoke_scope("orders.read", later + timedelta(hours=1), SELLER, REQUIRED)
    consent = [
        e
        for e in installation.collect_events()
        if isinstance(e, Installation.ScopesGranted | Installation.ScopeRevoked)
    ]
    assert [type(e).__name__ for e in consent] == ["ScopesGranted", "ScopeRevoked"]
    granted, revoked = consent
    assert isinstance(granted, Installation.ScopesGranted)
    assert isinstance(revoked, Installation.ScopeRevoked)
    assert (granted.scopes, granted.granted_at, granted.by) == (["orders.read"], later, SELLER)
    assert (revoked.scope, revoked.by) == ("orders.read", SELLER)
    assert installation.scopes == ["fulfillment.write"]


@pytest.mark.parametrize(
    ("scope", "error"),
    [
        ("fulfillment.write", RequiredScope),
        ("finance.read", ScopeNotGranted),
    ],
)
def test_only_a_granted_optional_scope_can_be_revoked(scope: str, error: type[Exception]) -> None:
    installation = pending()
    installation.authorize(NOW)
    with pytest.raises(error) as refused:
        installation.revoke_scope(scope, NOW, SELLER, REQUIRED)
    assert refused.value.field == "scope"  # type: ignore[attr-defined]


def test_the_last_scope_is_not_revoked_but_the_installation_cancelled() -> None:
    installation = pending(["orders.read"])
    installation.authorize(NOW)
    with pytest.raises(InvalidInput, match="cancel the installation"):
        installation.revoke_scope("orders.read", NOW, SELLER, REQUIRED)


def test_consent_changes_only_on_an_authorized_installation() -> None:
    installation = pending()
    with pytest.raises(InstallationNotActive):
        installation.revoke_scope("orders.read", NOW, SELLER, REQUIRED)
    with pytest.raises(InstallationNotActive):
        installation.grant_scopes(["customers.read"], NOW, SELLER)
    installation.authorize(NOW)
    installation.cancel(NOW)
    with pytest.raises(InstallationNotActive):
        installation.revoke_scope("orders.read", NOW, SELLER, REQUIRED)


def test_an_expired_installation_may_still_lose_a_scope_before_renewal() -> None:
    installation = pending()
    installation.authorize(NOW)
    installation.expire(NOW + timedelta(days=31))
    installation.revoke_scope("orders.read", NOW + timedelta(days=32), SELLER, REQUIRED)
    assert "orders.read" not in installation.scopes


# A seller's consent decisions, as a model: grant some optional scopes, or revoke one.
decision = st.one_of(
    st.tuples(st.just("grant"), st.lists(st.sampled_from(OPTIONAL), max_size=3)),
    st.tuples(st.just("revoke"), st.sampled_from([*OPTIONAL, *REQUIRED, "finance.read"])),
)


@settings(max_examples=200, deadline=None)
@given(
    kept=st.lists(st.sampled_from(OPTIONAL), unique=True),
    decisions=st.lists(decision, max_size=12),
)
def test_scopes_are_the_required_ones_plus_the_optional_ones_granted_and_not_revoked(
    kept: list[str], decisions: list[tuple[str, Any]]
) -> None:
    installation = pending([*REQUIRED, *OPTIONAL])
    installation.authorize(NOW, [*REQUIRED, *kept], REQUIRED)
    model = set(kept)
    for action, what in decisions:
        if action == "grant":
            installation.grant_scopes(what, NOW, SELLER)
            model |= set(what)
        elif what in model:
            installation.revoke_scope(what, NOW, SELLER, REQUIRED)
            model.discard(what)
        else:  # required, never granted, or already revoked: refused, nothing changes
            with pytest.raises(InvalidInput):
                installation.revoke_scope(what, NOW, SELLER, REQUIRED)
        assert set(installation.scopes) == set(REQUIRED) | model
        assert installation.scopes == sorted(installation.scopes, key=list(SCOPES).index)
    assert replayed(installation).scopes == installation.scopes  # replay equals live


# --- the use cases through the store ----------------------------------------------------------
class Shop:
    """An app requiring fulfillment.write and asking orders.read and inventory.read optionally,
    and a seller."""

    def __init__(self, store: Store) -> None:
        self.store = store
        listed = listings.list_app(
            store,
            f.developer(store),
            f.listing(scopes=REQUIRED, optional_scopes=["orders.read", "inventory.read"]),
        )
        self.app_id, self.client_id, self.secret = (
            listed.id,
            listed.client_id,
            listed.client_secret,
        )
        self.seller = f.seller(store)

    def install(self, scopes: list[str] | None = None) -> Any:
        outcome = installations.install(
            self.store, self.seller, self.app_id, "30d", "a@b.co", "+14155550100", scopes=scopes
        )
        return outcome.id

    def request(self, scope: str) -> authorization.AuthorizationRequest:
        return authorization.check_authorization_request(
            self.store,
            client_id=self.client_id,
            redirect_uri=REDIRECT,
            response_type="code",
            scope=scope,
            state="s",
            code_challenge=None,
            code_challenge_method=None,
        )


def test_a_listing_names_each_scope_once(store: Store) -> None:
    developer = f.developer(store)
    with pytest.raises(InvalidInput) as both:
        listings.list_app(store, developer, f.listing(scopes=REQUIRED, optional_scopes=REQUIRED))
    assert both.value.field == "optional_scopes"
    with pytest.raises(UnknownScope):
        listings.list_app(store, developer, f.listing(optional_scopes=["root"]))
    listed = listings.list_app(store, developer, f.listing())
    assert listings.app(store, listed.id).optional_scopes == []


def test_a_link_may_ask_optional_scopes_and_defaults_to_every_scope(store: Store) -> None:
    shop = Shop(store)
    assert shop.request("inventory.read").scopes == ["inventory.read"]
    everything = authorization.check_authorization_request(
        store,
        client_id=shop.client_id,
        redirect_uri=REDIRECT,
        response_type="code",
        scope=None,
        state=None,
        code_challenge=None,
        code_challenge_method=None,
    )
    assert everything.scopes == ["orders.read", "fulfillment.write", "inventory.read"]
    with pytest.raises(OAuthError) as unasked:
        shop.request("customers.read")
    assert unasked.value.error == "invalid_scope"


def test_no_code_drops_a_scope_the_seller_was_not_asked_for(store: Store) -> None:
    shop = Shop(store)
    installation = shop.install(REQUIRED)
    installations.authorize(store, shop.seller, installation)
    request = shop.request("fulfillment.write orders.read")
    with pytest.raises(OAuthError) as silent:
        authorization.issue_code(store, shop.seller, installation, request)
    assert silent.value.error == "access_denied" and "orders.read" in silent.value.description
    declined = authorization.issue_code(store, shop.seller, installation, request, ["orders.read"])
    client = tokens.authenticate_client(store, shop.client_id, shop.secret)
    assert tokens.exchange_code(store, client, declined.code, REDIRECT, None).scopes == REQUIRED


def test_a_code_issued_before_a_revocation_does_not_carry_the_revoked_scope(store: Store) -> None:
    shop = Shop(store)
    installation = shop.install()
    done = authorization.authorize_in_store(store, shop.seller, installation, "https://store")
    installations.revoke_scope(store, shop.seller, installation, "orders.read")
    client = tokens.authenticate_client(store, shop.client_id, shop.secret)
    issued = tokens.exchange_code(store, client, done.code, None, None)
    assert issued.scopes == ["fulfillment.write", "inventory.read"]


def test_every_token_loses_a_revoked_scope_and_a_regrant_restores_it(store: Store) -> None:
    shop = Shop(store)
    installation = shop.install()
    done = authorization.authorize_in_store(store, shop.seller, installation, "https://store")
    assert done.redirect_url.startswith(REDIRECT + "?code=ac_") and "iss=https" in done.redirect_url
    client = tokens.authenticate_client(store, shop.client_id, shop.secret)
    issued = tokens.exchange_code(store, client, done.code, None, None)
    installations.revoke_scope(store, shop.seller, installation, "inventory.read")
    for token in (issued.access_token, issued.refresh_token):
        assert tokens.check_token(store, token).scopes == ["orders.read", "fulfillment.write"]
    refused = tokens.check_access_token(store, issued.access_token, ("inventory.read",))
    assert not refused.active and refused.reason == "insufficient_scope"
    # Consent given again (re-authorization) is the seller's word: the token has it again.
    installations.grant_scopes(store, shop.seller, installation, ["inventory.read"])
    assert tokens.check_access_token(store, issued.access_token, "inventory.read").active


def test_granting_a_scope_the_app_does_not_ask_for_is_refused(store: Store) -> None:
    shop = Shop(store)
    installation = shop.install(REQUIRED)
    installations.authorize(store, shop.seller, installation)
    with pytest.raises(InvalidInput):
        installations.grant_scopes(store, shop.seller, installation, ["finance.read"])
