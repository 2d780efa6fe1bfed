"""Delivery: one outgoing message (a webhook POST, an e-mail) tried until it gets through.

The message itself is in a read model (built from the event that caused it); this
aggregate records only what happened to it, so a rebuilt read model learns it again and
a replay of the log never sends anything twice. Each attempt is first *claimed* (an event
appended with optimistic concurrency: of several dispatchers racing for the same attempt
only one can append it) and then its outcome is recorded. A claim carries a lease: if its
dispatcher dies before recording the outcome, another may claim the next attempt once
the lease has run out (at-least-once, never two dispatchers on one attempt).

The aggregate is created by the first claim; its id is the delivery's id, derived from
what caused it (see domain.webhook.delivery_id_for).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import NotDue

# An error text is kept up to this many characters.
MAX_ERROR = 500


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Delivery(Aggregate):
    """What happened to one outgoing message: claims, attempts, and the final outcome."""

    class Started(Aggregate.Created):
        delivery_id: UUID
        channel: str
        claimed_at: datetime
        lease_until: datetime
        give_up_at: datetime

    class Claimed(Aggregate.Event):
        channel: str
        attempt: int
        claimed_at: datetime
        lease_until: datetime

    class Attempted(Aggregate.Event):
        """An attempt failed; the next one is due at `next_attempt_at`."""

        channel: str
        attempt: int
        status_code: int | None
        error: str
        latency_ms: float | None
        attempted_at: datetime
        next_attempt_at: datetime

    class Delivered(Aggregate.Event):
        channel: str
        attempt: int
        status_code: int | None
        latency_ms: float | None
        delivered_at: datetime

    class Failed(Aggregate.Event):
        """Given up: the retry window ran out (or there is nowhere left to send to)."""

        channel: str
        attempt: int
        status_code: int | None
        error: str
        latency_ms: float | None
        failed_at: datetime

    class Replayed(Aggregate.Event):
        """Asked to be sent again now, with a fresh retry window."""

        channel: str
        requested_at: datetime
        give_up_at: datetime

    @staticmethod
    def create_id(delivery_id: UUID) -> UUID:
        return delivery_id

    @event(Started)
    def __init__(
        self,
        delivery_id: UUID,
        channel: str,
        claimed_at: datetime,
        lease_until: datetime,
        give_up_at: datetime,
    ) -> None:
        self.channel = channel
        self.status = DeliveryStatus.PENDING
        self.attempts = 1
        self.in_flight: int | None = 1
        self.lease_until = lease_until
        self.next_attempt_at = claimed_at
        self.give_up_at = give_up_at
        self.delivered_at: datetime | None = None

    # --- claims ----------------------------------------------------------------------------
    def claimable(self, now: datetime) -> str | None:
        """Why no attempt may be claimed at `now` (None: one may)."""
        if self.status is not DeliveryStatus.PENDING:
            return f"delivery {self.status.value}"
        if self.in_flight is not None and self.lease_until > now:
            return "an attempt is in flight"
        if self.next_attempt_at > now:
            return "the next attempt is not due yet"
        return None

    def claim(self, now: datetime, lease_until: datetime) -> int:
        """Claims the next attempt until `lease_until`; returns its number."""
        reason = self.claimable(now)
        if reason is not None:
            raise NotDue(reason)
        self._claimed(self.channel, self.attempts + 1, now, lease_until)
        return self.attempts

    @event(Claimed)
    def _claimed(
        self, channel: str, attempt: int, claimed_at: datetime, lease_until: datetime
    ) -> None:
        self.attempts = attempt
        self.in_flight = attempt
        self.lease_until = lease_until

    # --- outcomes ---------------------------------------------------------------------------
    def _require_in_flight(self, attempt: int) -> None:
        if self.in_flight != attempt:
            raise NotDue(f"attempt {attempt} is not the one in flight")

    def succeed(
        self, attempt: int, status_code: int | None, latency_ms: float | None, now: datetime
    ) -> None:
        """The attempt got through."""
        self._require_in_flight(attempt)
        self._delivered(self.channel, attempt, status_code, latency_ms, now)

    @event(Delivered)
    def _delivered(
        self,
        channel: str,
        attempt: int,
        status_code: int | None,
        latency_ms: float | None,
        delivered_at: datetime,
    ) -> None:
        self.status = DeliveryStatus.SUCCEEDED
        self.in_flight = None
        self.delivered_at = delivered_at

    def fail(
        self,
        attempt: int,
        status_code: int | None,
        error: str,
        latency_ms: float | None,
        now: datetime,
        retry_at: datetime | None,
    ) -> None:
        """The attempt failed: try again at `retry_at`, or give up when that is past the
        retry window (or None: nothing will ever change the answer)."""
        self._require_in_flight(attempt)
        error = error[:MAX_ERROR]
        if retry_at is None or retry_at > self.give_up_at:
            self._failed(self.channel, attempt, status_code, error, latency_ms, now)
        else:
            self._attempted(self.channel, attempt, status_code, error, latency_ms, now, retry_at)

    @event(Attempted)
    def _attempted(
        self,
        channel: str,
        attempt: int,
        status_code: int | None,
        error: str,
        latency_ms: float | None,
        attempted_at: datetime,
        next_attempt_at: datetime,
    ) -> None:
        self.in_flight = None
        self.next_attempt_at = next_attempt_at

    @event(Failed)
    def _failed(
        self,
        channel: str,
        attempt: int,
        status_code: int | None,
        error: str,
        latency_ms: float | None,
        failed_at: datetime,
    ) -> None:
        self.status = DeliveryStatus.FAILED
        self.in_flight = None

    def replay(self, now: datetime, give_up_at: datetime) -> None:
        """Send again now (whatever happened before), retrying until `give_up_at`."""
        self._replayed(self.channel, now, give_up_at)

    @event(Replayed)
    def _replayed(self, channel: str, requested_at: datetime, give_up_at: datetime) -> None:
        self.status = DeliveryStatus.PENDING
        self.next_attempt_at = requested_at
        self.give_up_at = give_up_at


def started(
    delivery_id: UUID, channel: str, now: datetime, lease_until: datetime, give_up_at: datetime
) -> Delivery:
    """A delivery's first claim (attempt 1), which creates its aggregate."""
    return Delivery(
        delivery_id=delivery_id,
        channel=channel,
        claimed_at=now,
        lease_until=lease_until,
        give_up_at=give_up_at,
    )
