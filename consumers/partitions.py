"""Keeps each partition a worker owns either moving or visibly stopped.

- A batch that cannot be decoded stalls only its partition: it is paused (the others go on),
  reported once in the log, on `/readyz` (503, naming it) and in `/metrics`, and fetched
  again now and then (a corrupt fetch may read fine the next time).
- An operator's skip (`appstore consume --skip-to P:O`, a `ConsumerOffsets.SkipRequested`
  event) is carried out by the worker that owns the partition: seek, commit, resume, and a
  `Skipped` event in the audit history.
- Lag per partition (end offset - committed offset) is refreshed every few seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from kafka.consumer import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import Counter

from application import ingest
from application.store import Store
from consumers.health import STALL_UNDECODABLE, ConsumerHealth, Stall
from consumers.undecodable import undecodable_batch

log = logging.getLogger("appstore.consumer")

STALLS = Counter(
    "appstore_consumer_stalls_total",
    "Partitions found stuck at a batch the consumer cannot decode (once per partition and offset).",
    ["topic"],
)
SKIPS = Counter("appstore_consumer_skips_total", "Operator skips carried out, by topic.", ["topic"])


def worker_name(client_id: str) -> str:
    """Who carried out a skip, in the audit history."""
    return f"{client_id}@{socket.gethostname()}:{os.getpid()}"


class PartitionWatch:
    """Stalls, operator skips and lag for one worker's consumer (all calls from its thread)."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        store: Store,
        health: ConsumerHealth,
        *,
        topic: str,
        group: str,
        client_id: str,
        stall_retry_s: float,
        skip_check_s: float,
        lag_interval_s: float,
    ) -> None:
        self.consumer = consumer
        self.store = store
        self.health = health
        self.topic, self.group = topic, group
        self.name = worker_name(client_id)
        self.stall_retry_s = stall_retry_s
        self.skip_check_s = skip_check_s
        self.lag_interval_s = lag_interval_s
        self._retry_at: dict[TopicPartition, float] = {}
        self._next_skip_check = 0.0
        self._next_lag = 0.0
        self._committed: dict[TopicPartition, int] = {}

    # --- stalls --------------------------------------------------------------------------
    def undecodable(self, error: BaseException) -> bool:
        """Handles a poll error raised on a batch that cannot be decoded; False for others."""
        found = undecodable_batch(error)
        if found is None:
            return False
        tp = found.partition
        offset = found.offset if found.offset >= 0 else self._position(tp)
        try:
            self.consumer.pause(tp)
        except Exception:  # revoked meanwhile: its new owner meets the batch and reports it
            return True
        self._retry_at[tp] = time.monotonic() + self.stall_retry_s
        stall = Stall(
            topic=tp.topic,
            partition=tp.partition,
            offset=offset,
            next_offset=found.next_offset,
            reason=STALL_UNDECODABLE,
            detail=found.error,
            since=time.time(),
        )
        if self.health.stall(stall):
            STALLS.labels(tp.topic).inc()
            log.error(
                "partition %s stalled at offset %d: a batch cannot be decoded (%s). The other "
                "partitions go on; this one is retried every %.0fs. To give up that batch: %s",
                stall.name,
                offset,
                found.error,
                self.stall_retry_s,
                stall.skip_command(),
            )
        return True

    def reading(self, partitions: set[TopicPartition]) -> None:
        """Records arrived from these partitions: any stall on them is over."""
        for tp in partitions & set(self.health.stalled()):
            stall = self.health.unstall(tp)
            self._retry_at.pop(tp, None)
            if stall is not None:
                log.warning("partition %s reads again from offset %d", stall.name, stall.offset)

    def _retry_stalled(self, now: float) -> None:
        for tp in list(self._retry_at):
            if now >= self._retry_at[tp]:
                del self._retry_at[tp]
                self.consumer.resume(tp)  # the next poll re-fetches it: readable, or stalled again

    # --- the loop's between-batches work --------------------------------------------------
    def tick(self) -> None:
        """Runs what is due: stalled partitions retried, operator skips, lag refreshed."""
        now = time.monotonic()
        owned = set(self.consumer.assignment())
        self.health.assigned(owned)
        for tp in set(self._retry_at) - owned:
            del self._retry_at[tp]  # revoked: its new owner deals with it
        for tp in set(self._committed) - owned:
            del self._committed[tp]  # its next owner may commit meanwhile
        self._retry_stalled(now)
        if now >= self._next_skip_check:
            self._next_skip_check = now + self.skip_check_s
            self._apply_skips(owned)
        if now >= self._next_lag and owned:
            self._next_lag = now + self.lag_interval_s
            self._refresh_lag(owned)

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """The group's offsets are now these (committed by the worker, or learnt)."""
        self.health.committed(offsets)
        self._committed.update(offsets)

    def _refresh_lag(self, owned: set[TopicPartition]) -> None:
        try:
            self._learn_committed(owned)
            self._commit_idle_positions(owned)
            self.health.ends(self.consumer.end_offsets(sorted(owned), timeout_ms=5_000))
        except Exception as error:  # the broker is away: keep the last figures
            log.debug("could not refresh the lag: %r", error)
            self.health.failed(error)
        else:
            self.health.worked()

    def _learn_committed(self, owned: set[TopicPartition]) -> None:
        learnt: dict[TopicPartition, int] = {}
        never: list[TopicPartition] = []
        for tp in sorted(owned - set(self._committed)):
            offset = self.consumer.committed(tp, timeout_ms=5_000)
            if offset is None:
                never.append(tp)
            else:
                learnt[tp] = offset
        if never:  # a new group reads from the beginning
            learnt.update(self.consumer.beginning_offsets(never, timeout_ms=5_000))
        if learnt:
            self.committed(learnt)

    def _commit_idle_positions(self, owned: set[TopicPartition]) -> None:
        """Commits positions that moved past what no batch commits: transaction markers and
        aborted messages. Between batches every record before the position is done, so this
        is safe; without it a transactional topic would show a lag of 1 forever."""
        moved: dict[TopicPartition, int] = {}
        for tp in sorted(owned - set(self.health.stalled())):
            position = self._position(tp)
            if tp in self._committed and position > self._committed[tp]:
                moved[tp] = position
        if moved:
            self.consumer.commit(
                {tp: OffsetAndMetadata(o, "", -1) for tp, o in moved.items()}, timeout_ms=15_000
            )
            self.committed(moved)

    def _position(self, tp: TopicPartition) -> int:
        try:
            return int(self.consumer.position(tp, timeout_ms=5_000))
        except Exception:
            return -1

    # --- operator skips -------------------------------------------------------------------
    def _apply_skips(self, owned: set[TopicPartition]) -> None:
        try:
            offsets = ingest.consumer_offsets(self.store, self.group, self.topic)
        except Exception as error:  # the store is away; the next check tries again
            log.debug("could not read the skip requests: %r", error)
            return
        if offsets is None:
            return  # no skip ever asked for
        for partition, pending in sorted(offsets.pending.items()):
            tp = TopicPartition(self.topic, partition)
            if tp not in owned:
                continue
            position = self._position(tp)
            if position < 0:
                continue
            target = max(position, pending.to_offset)
            if position < pending.to_offset:
                self.consumer.seek(tp, pending.to_offset)
                self.consumer.commit({tp: OffsetAndMetadata(target, "", -1)}, timeout_ms=15_000)
                self.committed({tp: target})
            self.consumer.resume(tp)
            self._retry_at.pop(tp, None)
            self.health.unstall(tp)
            try:
                ingest.record_skip(
                    self.store, self.group, self.topic, partition, position, target, self.name
                )
            except Exception as error:  # committed anyway; the next check records it
                log.warning("skip on %s done, but not yet recorded: %r", tp, error)
                return
            SKIPS.labels(self.topic).inc()
            log.warning(
                "skipped %s from offset %d to %d (%d messages) as %s asked: %s",
                f"{tp.topic}-{tp.partition}",
                position,
                target,
                target - position,
                pending.requested_by,
                pending.reason,
            )
