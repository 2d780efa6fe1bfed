"""Value types: the request models' duration type is the domain's, and conditions come
from the domain's scope vocabulary."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

import pytest

from domain import values as v
from domain.errors import InvalidInput


def test_the_duration_type_of_request_models_lists_exactly_the_domains_durations() -> None:
    assert list(typing.get_args(v.DurationText)) == [d.value for d in v.Duration]


def test_conditions_say_in_plain_words_what_an_app_may_read_and_change() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    conditions = v.Conditions.of(
        ["orders.read", "fulfillment.write"], v.Duration.D90, now, authorize_before=now
    )
    assert conditions.can_read == [v.SCOPES["orders.read"]]
    assert conditions.can_change == [v.SCOPES["fulfillment.write"]]
    assert conditions.expires_at_if_authorized_now == now + timedelta(days=90)
    unlimited = v.Conditions.of(["shop.read"], v.Duration.UNLIMITED, now, authorize_before=now)
    assert unlimited.expires_at_if_authorized_now is None


def test_days_left_round_up_and_stop_at_zero() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert v.days_left(None, now) is None
    assert v.days_left(now + timedelta(days=13, hours=1), now) == 14
    assert v.days_left(now - timedelta(seconds=1), now) == 0


# Each end of each range of control characters, and characters just beside them.
CONTROLS = "\x00\x08\x0b\x0c\x0e\x1f\x7f\x85\x9f\u2028\u2029\u202a\u202e\u2066\u2069"
LAYOUT = "\t\n\r"
NOT_CONTROLS = " ~\xa0é\u2027\u202f\u2065\u206a😀"


@pytest.mark.parametrize("char", list(CONTROLS + LAYOUT + NOT_CONTROLS))
def test_a_text_refuses_control_characters_and_keeps_layout_only_when_multiline(
    char: str,
) -> None:
    value = f"before{char}after"
    for multiline in (False, True):
        refused = char in CONTROLS or (char in LAYOUT and not multiline)
        if refused:
            with pytest.raises(InvalidInput, match="control characters"):
                v.text(value, "name", max_length=50, multiline=multiline)
        else:
            assert v.text(value, "name", max_length=50, multiline=multiline) == value
