"""Properties of the refresh chain under any sequence of refreshes, reuses and waits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application import tokens
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from domain.errors import OAuthError
from domain.oauth import REFRESH_GRACE
from tests.unit.test_oauth_domain import World

# Each step: refresh with the n-th newest refresh token we hold (0 = newest), after a wait.
steps = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=120)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_refresh_chain_invariants(steps: list[tuple[int, int]]) -> None:
    with TemporaryDirectory() as directory:
        clock = FixedClock()
        url = f"sqlite:///{Path(directory) / 'store.db'}"
        store = build_store(Settings(database_url=url, fast_password_hashing=True), clock=clock)
        try:
            world = World(store)
            first = world.token_set()
            held = [first.refresh_token]  # oldest first
            accesses = [first.access_token]
            superseded: dict[str, object] = {}  # token -> when it was rotated away
            revoked = False
            for back, wait in steps:
                clock.advance(timedelta(seconds=wait))
                token = held[max(0, len(held) - 1 - back)]
                now = clock.now()
                rotated_at = superseded.get(token)
                fresh_enough = rotated_at is None or now < rotated_at + REFRESH_GRACE  # type: ignore[operator]
                try:
                    issued = tokens.refresh_tokens(store, world.client, token)
                except OAuthError as error:
                    assert error.error == "invalid_grant"
                    # refused only when revoked already or for a reuse after the grace window
                    assert revoked or not fresh_enough
                    revoked = True
                    continue
                assert not revoked and fresh_enough
                superseded[held[-1]] = now
                held.append(issued.refresh_token)
                accesses.append(issued.access_token)
            newest = tokens.check_token(store, held[-1])
            assert newest.active == (not revoked)
            if revoked:
                # a revoked chain leaves nothing usable behind
                for token in held + accesses:
                    assert tokens.check_token(store, token).reason == "revoked"
        finally:
            store.close()
