"""The dispatcher: sends due deliveries (webhooks, e-mails), retries, records every outcome.

One `step()` picks deliveries the read model finds due, claims an attempt of each in the
event store (a lost race means another dispatcher has it: skipped), sends them through the
channel, and records each outcome as an event: delivered, retry at (exponential backoff
with jitter), or failed once the retry window is over. Several dispatchers may run; the
claims make sure no attempt is sent twice, and a dispatcher that dies mid-attempt leaves a
lease that runs out, after which another one tries again (at-least-once).

The read model says what is *probably* due; the Delivery aggregate decides. So a stale or
rebuilt read model can cost a wasted load, never a second send.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError

from application.loops import LoopHealth, SupervisedLoop
from application.store import Store
from domain.delivery import Delivery, DeliveryStatus, started
from domain.errors import NotDue

log = logging.getLogger("appstore.dispatch")


@dataclass(frozen=True)
class DueDelivery:
    """A delivery the read model finds due, with what to send."""

    id: UUID
    attempts: int  # attempts the read model knows of (0: never tried)
    created_at: datetime  # when its cause happened: the retry window starts here
    target: UUID  # the webhook subscription (or the notification, for e-mails)
    kind: str  # the topic (or the e-mail's kind)
    payload: str  # what to send, as JSON text (a webhook body embeds it as it is)
    due_at: datetime  # when the read model thinks the next attempt is due


class DueDeliveries(Protocol):
    """Where a dispatcher learns what is due (a read-model query)."""

    def due(self, now: datetime, limit: int) -> Sequence[DueDelivery]: ...


@dataclass(frozen=True)
class Sent:
    """What one attempt gave."""

    ok: bool
    status_code: int | None = None
    error: str = ""
    latency_ms: float | None = None
    final: bool = False  # no later attempt can do better (e.g. the subscription is gone)


class Channel(Protocol):
    """Sends a batch of deliveries (concurrently if it likes); one `Sent` per delivery,
    in order. It must not raise for one delivery's failure."""

    name: str

    def send(self, deliveries: Sequence[DueDelivery]) -> Sequence[Sent]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to try again."""

    retry_for: timedelta = timedelta(hours=24)
    first_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=1)
    # An attempt's claim lasts this long: longer than sending the batch before it and then
    # its own (see appstore.outbound.retry_policy).
    lease: timedelta = timedelta(seconds=60)

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """Wait after failed attempt `attempt`: doubling from `first_delay` up to
        `max_delay`, then "equal jitter" (half fixed, half random) so that receivers coming
        back from an outage are not hit by every retry at once."""
        doubled = self.first_delay.total_seconds() * 2.0 ** min(attempt - 1, 64)
        capped = min(doubled, self.max_delay.total_seconds())
        jittered = timedelta(seconds=capped / 2 + capped / 2 * rng.random())
        return jittered


# Deliveries this dispatcher handled recently, not looked at again until then (the read
# model shows them due until the projection has applied the outcome).
_REMEMBERED = 50_000
_NEVER = datetime.max.replace(tzinfo=UTC)


class Dispatcher:
    """Sends one channel's due deliveries; `step()` once, or `run(stop)` in a loop."""

    def __init__(
        self,
        store: Store,
        due: DueDeliveries,
        channel: Channel,
        policy: RetryPolicy | None = None,
        *,
        batch_size: int = 50,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.due = due
        self.channel = channel
        self.policy = policy or RetryPolicy()
        self.batch_size = batch_size
        self.rng = rng or random.Random()
        # Deliveries handled here lately: (the due time the read model showed, until when
        # to leave them be). A changed due time (a replay) makes them worth a look at once.
        self._quiet: OrderedDict[UUID, tuple[datetime, datetime]] = OrderedDict()
        self._quiet_lock = threading.Lock()
        # `run` sends a batch and records its outcomes while it claims the next one.
        self._sender: ThreadPoolExecutor | None = None
        self._recording: Future[None] | None = None

    def step(self) -> int:
        """One round: claim what is due, send it, record the outcomes. Returns the number
        of attempts made."""
        return self._round(overlap=False)

    def step_overlapped(self) -> int:
        """Like `step`, but the batch is sent and recorded in the background while the
        caller's next step claims another (a loop's body; `finish_recording()` at the end)."""
        return self._round(overlap=True)

    def _round(self, *, overlap: bool) -> int:
        now = self.store.clock.now()
        candidates = self._candidates(now)
        if not candidates:
            self.finish_recording()
            return 0
        claimed = self._claim(candidates, now)
        if claimed and overlap:
            self.finish_recording()  # one batch in flight at most, recorded in order
            if self._sender is None:
                self._sender = ThreadPoolExecutor(1, thread_name_prefix="dispatch-send")
            self._recording = self._sender.submit(self._deliver, claimed, now)
        elif claimed:
            self._deliver(claimed, now)
        return len(claimed)

    def _deliver(self, claimed: Sequence[tuple[DueDelivery, Delivery]], now: datetime) -> None:
        self._record(claimed, self._send(claimed, now))

    def finish_recording(self) -> None:
        """Waits until the last batch is sent and its outcomes saved (raises what failed)."""
        recording, self._recording = self._recording, None
        if recording is not None:
            recording.result()

    def _candidates(self, now: datetime) -> list[DueDelivery]:
        """Up to a batch of due deliveries not handled here lately. When the read model is
        behind (handled ones still look due), look further down the list."""
        limit = self.batch_size * 2
        for _ in range(4):
            rows = self.due.due(now, limit)
            fresh = [d for d in rows if not self._resting(d, now)]
            if len(fresh) >= self.batch_size or len(rows) < limit:
                break
            limit *= 4
        return fresh[: self.batch_size]

    # --- claims -----------------------------------------------------------------------------
    def _claim_one(self, d: DueDelivery, now: datetime, *, load: bool) -> Delivery | None:
        lease_until = now + self.policy.lease
        delivery = self.store.load(d.id, Delivery) if load else None
        if delivery is None:
            give_up_at = d.created_at + self.policy.retry_for
            return started(d.id, self.channel.name, now, lease_until, give_up_at)
        reason = delivery.claimable(now)
        if reason is not None:
            # Someone else has it, or the read model is behind: look again later.
            self._rest(d, max(delivery.next_attempt_at, delivery.lease_until, now))
            return None
        delivery.claim(now, lease_until)
        return delivery

    def _claim(
        self, candidates: Sequence[DueDelivery], now: datetime
    ) -> list[tuple[DueDelivery, Delivery]]:
        """Claims an attempt of each candidate: all in one transaction when nobody else
        races for them, else one by one (the losers are skipped)."""
        claims: list[tuple[DueDelivery, Delivery]] = []
        for d in candidates:
            delivery = self._claim_one(d, now, load=d.attempts > 0)
            if delivery is not None:
                claims.append((d, delivery))
        try:
            self.store.save(*(delivery for _, delivery in claims))
        except IntegrityError:
            claims = []
            for d in candidates:
                try:
                    delivery = self._claim_one(d, now, load=True)
                    if delivery is not None:
                        self.store.save(delivery)
                        claims.append((d, delivery))
                except (IntegrityError, NotDue):
                    self._rest(d, now + self.policy.lease)
        for d, delivery in claims:
            self._rest(d, delivery.lease_until)
        return claims

    # --- sending and outcomes ---------------------------------------------------------------
    def _send(self, claimed: Sequence[tuple[DueDelivery, Delivery]], now: datetime) -> list[Sent]:
        """The channel's answers; a message never tried before its retry window ended (say,
        e-mails queued while no SMTP server was configured) is given up, not sent late."""
        late = Sent(False, error="not sent within the retry window", final=True)
        stale = {
            d.id
            for d, delivery in claimed
            if delivery.attempts == 1 and now >= d.created_at + self.policy.retry_for
        }
        fresh = [d for d, _ in claimed if d.id not in stale]
        try:
            answers = iter(self.channel.send(fresh)) if fresh else iter(())
        except Exception as error:  # a broken channel is an attempt that failed
            log.exception("%s channel failed", self.channel.name)
            answers = iter([Sent(False, error=f"{type(error).__name__}: {error}")] * len(fresh))
        return [late if d.id in stale else next(answers) for d, _ in claimed]

    def _outcome(self, delivery: Delivery, attempt: int, sent: Sent, now: datetime) -> None:
        if sent.ok:
            delivery.succeed(attempt, sent.status_code, sent.latency_ms, now)
            return
        retry_at = None if sent.final else now + self.policy.delay(attempt, self.rng)
        delivery.fail(attempt, sent.status_code, sent.error, sent.latency_ms, now, retry_at)

    def _record(
        self, claimed: Sequence[tuple[DueDelivery, Delivery]], results: Sequence[Sent]
    ) -> None:
        now = self.store.clock.now()
        outcomes = [
            (d, delivery, delivery.attempts, sent)
            for (d, delivery), sent in zip(claimed, results, strict=True)
        ]
        for d, delivery, attempt, sent in outcomes:
            self._outcome(delivery, attempt, sent, now)
            pending = delivery.status is DeliveryStatus.PENDING
            self._rest(d, delivery.next_attempt_at if pending else _NEVER)
        try:
            self._save_outcomes([delivery for _, delivery, _, _ in outcomes])
        except IntegrityError:
            # Another dispatcher took an attempt over (our lease ran out): record the rest.
            for d, _, attempt, sent in outcomes:
                self._record_alone(d.id, attempt, sent)

    def _save_outcomes(self, deliveries: list[Delivery]) -> None:
        """Saves what was sent; a busy database is tried again for a while, since an
        outcome lost here means sending again once the lease runs out."""
        for tries in range(1, 6):
            try:
                self.store.save(*deliveries)
                return
            except IntegrityError:
                raise
            except PersistenceError:
                if tries == 5:
                    raise
                time.sleep(0.05 * 2**tries)

    def _record_alone(self, delivery_id: UUID, attempt: int, sent: Sent) -> None:
        def record() -> None:
            delivery = self.store.load(delivery_id, Delivery)
            if delivery is None:
                return
            try:
                self._outcome(delivery, attempt, sent, self.store.clock.now())
            except NotDue:
                return  # that attempt is no longer ours
            self.store.save(delivery)

        self.store.retrying(record)

    def _rest(self, d: DueDelivery, until: datetime) -> None:
        with self._quiet_lock:
            self._quiet[d.id] = (d.due_at, until)
            self._quiet.move_to_end(d.id)
            while len(self._quiet) > _REMEMBERED:
                self._quiet.popitem(last=False)

    def _resting(self, d: DueDelivery, now: datetime) -> bool:
        with self._quiet_lock:
            seen = self._quiet.get(d.id)
        return seen is not None and seen[0] == d.due_at and now < seen[1]

    # --- the loop ---------------------------------------------------------------------------
    def loop(self, interval: float = 0.2, health: LoopHealth | None = None) -> SupervisedLoop:
        """The supervised loop (application/loops.py): steps at once again after a busy
        round, after `interval` when idle, backs off after errors. A batch is sent and its
        outcomes saved while the next one is claimed; stopping finishes the last one."""
        name = f"dispatcher-{self.channel.name}"
        return SupervisedLoop(
            name,
            lambda: self.step_overlapped() > 0,
            interval=interval,
            health=health or LoopHealth(name),
            on_stop=self.close,
        )

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Steps until `stop` is set (see `loop`)."""
        self.loop(interval).run(stop)

    def close(self) -> None:
        """Records the outcomes still under way and stops sending."""
        self.finish_recording()
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None
