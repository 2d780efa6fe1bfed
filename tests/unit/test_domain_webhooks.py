"""Webhook subscriptions, delivery attempts, the retry schedule and expiry warnings as
the domain sees them (no network)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.dispatch import RetryPolicy
from application.secret_box import SecretBox, SecretUnreadable
from application.webhooks import new_secret
from domain.delivery import DeliveryStatus, started
from domain.errors import InvalidInput, NotDue, WebhookNotFound
from domain.installation import Installation
from domain.installation_snapshot import InstallationSnapshot
from domain.values import expiry_warning_due
from domain.webhook import TOPIC_MEANINGS, TOPICS, Webhook, check_topics
from projections.webhook_topics import TOPIC_EVENTS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def webhook() -> Webhook:
    return Webhook(
        app_id=uuid4(),
        developer_id=uuid4(),
        url="https://hooks.example.com/in",
        topics=["installation.authorized"],
        sealed_secret="sealed-1",
        created_at=T0,
    )


def test_every_topic_a_subscription_may_ask_for_is_produced_by_some_event() -> None:
    assert sorted({t.name for t in TOPIC_EVENTS}) == sorted(TOPICS)
    assert len(set(TOPICS)) == len(TOPICS)
    assert len({t.event for t in TOPIC_EVENTS}) == len(TOPIC_EVENTS)  # one topic per event
    # Both ways the scopes of an installation change are one topic.
    assert {t.event for t in TOPIC_EVENTS if t.name == "installation.scopes_changed"} == {
        Installation.ScopesGranted,
        Installation.ScopeRevoked,
    }


def test_every_topic_is_explained_in_plain_words() -> None:
    assert list(TOPIC_MEANINGS) == list(TOPICS)
    assert all(meaning.endswith(".") for meaning in TOPIC_MEANINGS.values())


def test_topics_are_checked_and_de_duplicated() -> None:
    assert check_topics(["incident.raised", "incident.raised"]) == ["incident.raised"]
    with pytest.raises(InvalidInput) as unknown:
        check_topics(["incident.raised", "nope"])
    assert unknown.value.field == "topics"


def test_a_rotation_keeps_the_previous_secret_signing_for_the_overlap_only() -> None:
    hook = webhook()
    hook.rotate_secret("sealed-2", T0, timedelta(hours=1))
    assert hook.sealed_secrets(T0) == ["sealed-2", "sealed-1"]
    assert hook.sealed_secrets(T0 + timedelta(hours=1)) == ["sealed-2"]
    hook.rotate_secret("sealed-3", T0 + timedelta(minutes=5), timedelta(0))
    assert hook.sealed_secrets(T0 + timedelta(minutes=5)) == ["sealed-3"]  # only one overlap
    with pytest.raises(InvalidInput):
        hook.rotate_secret("sealed-4", T0, timedelta(days=30))


def test_a_deleted_webhook_takes_no_more_commands() -> None:
    hook = webhook()
    hook.delete(T0)
    for act in (
        lambda: hook.change("https://x.example.com/", ["incident.raised"], T0),
        lambda: hook.request_test(T0),
        lambda: hook.delete(T0),
    ):
        with pytest.raises(WebhookNotFound):
            act()


def test_a_change_that_changes_nothing_records_nothing() -> None:
    hook = webhook()
    hook.collect_events()
    hook.change(hook.url, list(hook.topics), T0)
    assert hook.collect_events() == []


def test_secrets_are_sealed_and_only_the_same_key_opens_them() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) > 40
    sealed = SecretBox("key one").seal(secret)
    assert secret not in sealed
    assert SecretBox("key one").open(sealed) == secret
    with pytest.raises(SecretUnreadable):
        SecretBox("key two").open(sealed)


def test_an_attempt_is_claimed_once_and_its_lease_runs_out() -> None:
    delivery = started(uuid4(), "webhook", T0, T0 + LEASE, T0 + timedelta(hours=24))
    assert delivery.attempts == 1
    with pytest.raises(NotDue, match="in flight"):
        delivery.claim(T0 + timedelta(seconds=1), T0 + LEASE)
    # Its dispatcher died: after the lease, attempt 2 may be claimed; attempt 1's outcome
    # then no longer counts.
    assert delivery.claim(T0 + LEASE, T0 + 2 * LEASE) == 2
    with pytest.raises(NotDue):
        delivery.succeed(1, 200, 1.0, T0 + LEASE)
    delivery.succeed(2, 200, 1.0, T0 + LEASE)
    assert delivery.status is DeliveryStatus.SUCCEEDED
    with pytest.raises(NotDue, match="succeeded"):
        delivery.claim(T0 + timedelta(days=1), T0 + timedelta(days=2))


def test_a_failure_is_retried_until_the_window_ends_then_given_up() -> None:
    delivery = started(uuid4(), "webhook", T0, T0 + LEASE, T0 + timedelta(hours=1))
    delivery.fail(1, 503, "busy", 2.0, T0, T0 + timedelta(minutes=30))
    assert delivery.status is DeliveryStatus.PENDING
    with pytest.raises(NotDue, match="not due"):
        delivery.claim(T0 + timedelta(minutes=29), T0 + timedelta(minutes=30))
    now = T0 + timedelta(minutes=30)
    delivery.claim(now, now + LEASE)
    delivery.fail(2, 503, "busy", 2.0, now, now + timedelta(minutes=31))
    assert delivery.status is DeliveryStatus.FAILED
    delivery.replay(now, now + timedelta(hours=1))
    assert delivery.status is DeliveryStatus.PENDING and delivery.claimable(now) is None


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_backoff_doubles_up_to_the_cap_with_jitter_of_at_most_half(attempt: int, seed: int) -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=5), max_delay=timedelta(hours=1))
    delay = policy.delay(attempt, random.Random(seed))
    full = timedelta(seconds=min(5 * 2.0 ** (attempt - 1), 3600))
    assert full / 2 <= delay <= full


def test_the_default_schedule_tries_for_a_day() -> None:
    policy, rng = RetryPolicy(), random.Random(1)
    elapsed, attempts = timedelta(0), 1
    while elapsed + policy.delay(attempts, rng) <= policy.retry_for:
        elapsed += policy.delay(attempts, rng)
        attempts += 1
    assert 20 <= attempts <= 50


@pytest.mark.parametrize(
    ("left", "due"),
    [
        (timedelta(days=15), None),
        (timedelta(days=14), 14),
        (timedelta(days=3, hours=1), 14),
        (timedelta(days=3), 3),
        (timedelta(hours=25), 3),
        (timedelta(hours=1), 1),
        (timedelta(0), None),
        (-timedelta(hours=1), None),
    ],
)
def test_the_warning_due_is_the_most_urgent_threshold_passed(left: timedelta, due: int) -> None:
    assert expiry_warning_due(T0 + left, T0) == due


def test_an_installation_is_warned_once_per_threshold_and_its_snapshot_keeps_it() -> None:
    installation = Installation(
        seller_id=uuid4(),
        app_id=uuid4(),
        duration="30d",
        contact_email="a@b.example.com",
        contact_phone="+14155550100",
        scopes=["orders.read"],
        installed_at=T0,
    )
    installation.authorize(T0)
    assert "warned_days" not in vars(installation)  # as before warnings existed
    with pytest.raises(NotDue):
        installation.warn_expiry(T0)
    assert installation.warn_expiry(T0 + timedelta(days=27)) == 3
    with pytest.raises(NotDue):
        installation.warn_expiry(T0 + timedelta(days=27, hours=1))
    copy = InstallationSnapshot.take(installation).mutate(None)
    assert copy.warned_days == 3
    assert copy.warn_expiry(T0 + timedelta(days=29, hours=1)) == 1
