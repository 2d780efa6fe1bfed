"""A Kafka record value a connector got wrong is a named dead letter, never a loop failure."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from consumers.messages import REASON_SCHEMA, PoisonMessage, parse_message


def value(**overrides: object) -> bytes:
    body = {
        "event_id": "run-1",
        "installation_id": str(uuid4()),
        "kind": "failure",
        "area": "orders",
        "error_code": "SKU_NOT_FOUND",
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    return json.dumps({**body, **overrides}).encode()


def test_an_occurred_at_before_year_one_in_utc_is_a_schema_dead_letter() -> None:
    # Found by fuzzing POST /v1/sync-events: converting it to UTC overflowed (not a
    # ValueError), which on Kafka would have failed the poll loop on every retry.
    with pytest.raises(PoisonMessage) as refused:
        parse_message(value(occurred_at="0001-01-01T00:00:00+00:01"))
    assert refused.value.reason == REASON_SCHEMA
    assert "occurred_at" in refused.value.detail


def test_a_valid_value_parses_in_utc() -> None:
    parsed = parse_message(value(occurred_at="2026-01-01T02:00:00+02:00"))
    assert parsed.occurred_at.isoformat() == "2026-01-01T00:00:00+00:00"
