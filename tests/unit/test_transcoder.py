"""The store's JSON transcoder (application/transcoder.py) writes exactly the bytes
eventsourcing's would, for every kind of event the domain stores, and refuses alike."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

from application import sync_events, tokens
from application.store import Store
from application.transcoder import FastJSONTranscoder, faster
from domain.incident import SyncEvent
from tests.unit.test_oauth_domain import World


def _plain(store: Store) -> JSONTranscoder:
    plain = JSONTranscoder()
    store.application.register_transcodings(plain)
    return plain


def test_the_store_encodes_every_event_as_eventsourcing_does(store: Store) -> None:
    assert isinstance(store.application.mapper.transcoder, FastJSONTranscoder)
    world = World(store)
    issued = world.token_set()
    tokens.refresh_tokens(store, world.client, issued.refresh_token)
    report = SyncEvent("e1", world.installation, "failure", "orders", datetime.now(UTC), "E1")
    sync_events.record_sync_event(store, report)
    plain, fast = _plain(store), store.application.mapper.transcoder
    notifications = store.notifications(1, 10_000)
    assert len({n.topic for n in notifications}) > 10  # many kinds of events
    for notification in notifications:
        state = plain.decode(notification.state)
        assert fast.encode(state) == plain.encode(state) == notification.state
        assert fast.decode(notification.state) == state


def test_values_and_refusals_as_eventsourcing() -> None:
    plain = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        plain.register(transcoding)
    fast = faster(plain)
    assert isinstance(fast, FastJSONTranscoder) and faster(fast) is fast
    value = {"ids": [uuid4(), uuid4()], "at": datetime.now(UTC), "n": Decimal("1.5"), "é": "ü"}
    assert fast.encode(value) == plain.encode(value)
    assert fast.decode(fast.encode(value)) == value
    for transcoder in (plain, fast):
        with pytest.raises(TranscodingNotRegisteredError):
            transcoder.encode({"x": object()})
