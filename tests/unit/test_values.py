"""Value types: the request models' duration type is the domain's, and conditions come
from the domain's scope vocabulary."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

from domain import values as v


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
