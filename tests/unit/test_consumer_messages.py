"""A Kafka record value a connector got wrong is a named dead letter, never a loop failure."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from pydantic import ValidationError

from application.sync_events import SyncEventMessage
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


def _slow(value: bytes) -> object:
    """What parse_message answered before its fast path: json.loads + model_validate."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        return "invalid_json"
    if not isinstance(data, dict):
        return "schema_violation"
    try:
        return SyncEventMessage.model_validate(data)
    except ValidationError:
        return "schema_violation"


GOOD = {
    "event_id": " run-1 ",
    "installation_id": "3b0e37c0-ddf4-4a75-bd46-53b20741ad29",
    "kind": "failure",
    "area": "orders",
    "error_code": "E1",
    "object_ids": ["o-1"],
    "occurred_at": "2026-11-26T06:00:00+02:00",
}


@pytest.mark.parametrize(
    "value",
    [
        json.dumps(GOOD).encode(),
        json.dumps({**GOOD, "extra": {"nested": [1, 2]}}).encode(),
        json.dumps({**GOOD, "kind": "success", "error_code": None}).encode(),
        json.dumps({**GOOD, "occurred_at": 1764136800}).encode(),
        json.dumps({**GOOD, "message": "\ud800 lone surrogate"}).encode(),
        json.dumps({**GOOD, "object_ids": [1, 2]}).encode(),
        json.dumps({**GOOD, "app_id": "not-a-uuid"}).encode(),
        b'{"event_id": "a", "event_id": "b"' + json.dumps(GOOD).encode()[1:],
        json.dumps({**GOOD, "score": float("nan")}).encode(),
        b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),
        json.dumps(GOOD).encode().replace(b"orders", "\u00e9".encode("latin-1")),
        b"[1, 2]",
        b"{not json",
    ],
)
def test_the_fast_parser_answers_as_json_loads_and_model_validate(value: bytes) -> None:
    try:
        got: object = parse_message(value)
    except PoisonMessage as poison:
        got = poison.reason
    assert got == _slow(value)
