"""Racing token requests: the event store's optimistic concurrency keeps codes single-use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from application import tokens
from application.store import Store
from domain import oauth
from domain.credentials import token_hash
from domain.errors import OAuthError
from tests.unit.test_oauth_domain import REDIRECT, VERIFIER, World


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs the calls at the same moment; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as error:  # collected for the assertions
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_code_raced_by_two_requests_is_redeemed_once_and_the_replay_revokes(
    store: Store,
) -> None:
    world = World(store)
    code = world.code()
    client = world.client
    results = race([lambda: tokens.exchange_code(store, client, code, REDIRECT, VERIFIER)] * 4)
    issued = [r for r in results if isinstance(r, tokens.TokenSet)]
    refused = [r for r in results if isinstance(r, OAuthError)]
    assert len(issued) == 1 and len(refused) == 3, results
    assert all(r.error == "invalid_grant" for r in refused)
    # the losers were replays: what the code issued is revoked
    assert tokens.check_token(store, issued[0].access_token).reason == "revoked"


def test_racing_refreshes_of_one_token_all_land_in_one_chain(store: Store) -> None:
    world = World(store)
    first = world.token_set()
    client = world.client
    results = race([lambda: tokens.refresh_tokens(store, client, first.refresh_token)] * 3)
    issued = [r for r in results if isinstance(r, tokens.TokenSet)]
    assert issued, results
    # within the grace window every retry of the rotated-away token rotates the same chain
    assert len(issued) == 3, results
    record = store.load(oauth.token_id_for(token_hash(first.refresh_token)), oauth.IssuedToken)
    assert record is not None
    grant = store.load(record.grant_id, oauth.TokenGrant)
    assert grant is not None and not grant.is_revoked and grant.generation == 4
    assert all(tokens.check_token(store, t.refresh_token).active for t in issued)
