"""What a consumer says about itself: lag per partition, stalled partitions, whether it runs.

The worker writes one `ConsumerHealth`; readers take `snapshot()` (JSON for `/readyz`) and
`collector()` (Prometheus gauges for `/metrics`). `appstore serve` shows it on the API's own
`/readyz` and `/metrics`; a standalone `appstore consume --metrics-port N` serves it with the
health server every non-API process shares (appstore/health_server.py).
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kafka.structs import TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from application.loops import LoopHealth, ReadinessPolicy

# Readiness fails when a partition has more unread messages than this (as for projections).
MAX_READY_LAG = 10_000
# Polls or batches failing this long (no broker, no database) make the consumer not ready.
FAILING_GRACE_S = 60.0

STALL_UNDECODABLE = "undecodable_batch"


@dataclass(frozen=True)
class Stall:
    """A partition the consumer cannot read past on its own."""

    topic: str
    partition: int
    offset: int  # where it is stuck: the next offset to read
    next_offset: int | None  # the first offset after the unreadable batch, when known
    reason: str
    detail: str
    since: float  # time.time()

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    @property
    def skip_to(self) -> int:
        return self.next_offset if self.next_offset is not None else self.offset + 1

    def skip_command(self) -> str:
        """What an operator runs to give up this batch and go on (recorded in the audit log)."""
        target = f"{self.partition}:{self.skip_to}"
        return f"appstore consume --skip-to {target} --reason {shlex.quote('<why>')}"

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "next_offset": self.next_offset,
            "reason": self.reason,
            "detail": self.detail,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
            "skip_command": self.skip_command(),
        }


@dataclass
class PartitionOffsets:
    committed: int | None = None  # the group's committed offset (next to read)
    end: int | None = None  # the log end (last stable offset under read_committed)

    @property
    def lag(self) -> int | None:
        if self.end is None:
            return None
        return max(0, self.end - (self.committed or 0))


class ConsumerHealth:
    """Thread-safe state of one consumer, written by its worker, read by HTTP handlers.

    Its readiness is a `LoopHealth` (application/loops.py), the model every background loop
    shares: `loop` is what /readyz and /metrics read next to the projector's and the
    sweeper's; a stalled partition blocks it (status `stalled`).
    """

    def __init__(
        self,
        *,
        max_ready_lag: int = MAX_READY_LAG,
        failing_grace_s: float = FAILING_GRACE_S,
        lag_grace_s: float = 0.0,
    ) -> None:
        """Not ready when a partition lags more than `max_ready_lag` messages for longer
        than `lag_grace_s`, or polls and batches fail for longer than `failing_grace_s`."""
        self.max_ready_lag = max_ready_lag
        self.failing_grace_s = failing_grace_s
        self.loop = LoopHealth(
            "consumer",
            policy=ReadinessPolicy(max_lag=max_ready_lag, lag_seconds=lag_grace_s),
            failing_grace_s=failing_grace_s,
        )
        self._lock = threading.Lock()
        self.topic = ""
        self.group = ""
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._stalls: dict[TopicPartition, Stall] = {}

    # --- written by the worker ------------------------------------------------------------
    def started(self, topic: str, group: str) -> None:
        with self._lock:
            self.topic, self.group = topic, group
        self.loop.started()

    def stopped(self) -> None:
        self.loop.stopped()

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """The partitions owned now; others' lag and stalls are another consumer's to show."""
        owned = set(partitions)
        with self._lock:
            for tp in set(self._partitions) - owned:
                del self._partitions[tp]
            for tp in set(self._stalls) - owned:
                del self._stalls[tp]
            for tp in owned:
                self._partitions.setdefault(tp, PartitionOffsets())
        self._changed()

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, offset in offsets.items():
                self._partitions.setdefault(tp, PartitionOffsets()).committed = offset
        self._changed()

    def ends(self, offsets: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, offset in offsets.items():
                self._partitions.setdefault(tp, PartitionOffsets()).end = offset
        self._changed()

    def stall(self, stall: Stall) -> bool:
        """Records a stalled partition; True if it is news (not the same partition and offset)."""
        tp = TopicPartition(stall.topic, stall.partition)
        with self._lock:
            known = self._stalls.get(tp)
            if known is not None and known.offset == stall.offset:
                return False
            self._stalls[tp] = stall
        self._changed()
        return True

    def unstall(self, tp: TopicPartition) -> Stall | None:
        with self._lock:
            found = self._stalls.pop(tp, None)
        self._changed()
        return found

    def stalled(self) -> dict[TopicPartition, Stall]:
        with self._lock:
            return dict(self._stalls)

    def failed(self, error: BaseException) -> None:
        """A step failed for want of the broker or the store (it is being retried)."""
        self.loop.failed(error)

    def worked(self) -> None:
        """A poll (or a batch) went through: whatever failed before is over."""
        self.loop.succeeded()

    def _changed(self) -> None:
        """Hands the worst lag and the stalls to the loop's readiness."""
        with self._lock:
            worst = max((p.lag or 0 for p in self._partitions.values()), default=0)
            stalled = sorted(s.name for s in self._stalls.values())
        self.loop.report_lag(worst)
        if stalled:
            self.loop.block("stalled", ", ".join(stalled))
        else:
            self.loop.unblock()

    # --- read by /readyz and /metrics -----------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """`{status, ready, topic, group, partitions: {"topic-N": {topic, partition, committed,
        end, lag, stalled}},
        stalled: [name], last_error}`; `ready` is False for any status but "ok"."""
        with self._lock:
            partitions = {
                tp: PartitionOffsets(p.committed, p.end) for tp, p in self._partitions.items()
            }
            stalls = dict(self._stalls)
        loop = self.loop.snapshot()
        return {
            "status": loop["status"],
            "ready": loop["ready"],
            "topic": self.topic,
            "group": self.group,
            "partitions": {
                f"{tp.topic}-{tp.partition}": {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed": p.committed,
                    "end": p.end,
                    "lag": p.lag,
                    "stalled": stalls[tp].as_json() if tp in stalls else None,
                }
                for tp, p in sorted(partitions.items())
            },
            "stalled": sorted(s.name for s in stalls.values()),
            "last_error": loop["last_error"],
        }

    def collector(self) -> Collector:
        """Prometheus gauges read from this state at scrape time."""
        return _HealthCollector(self)

    @staticmethod
    def counters() -> Collector:
        """The consumer's counters and histograms (kept in prometheus-client's default
        registry), for a registry of its own such as the API's."""
        return _ConsumerCounters()


class _ConsumerCounters(Collector):
    def collect(self) -> Iterator[Any]:
        for family in REGISTRY.collect():
            if family.name.startswith(("appstore_sync_events", "appstore_consumer_")):
                yield family


class _HealthCollector(Collector):
    def __init__(self, health: ConsumerHealth) -> None:
        self.health = health

    def collect(self) -> Iterator[Any]:
        state = self.health.snapshot()
        yield GaugeMetricFamily(
            "appstore_consumer_up",
            "1 while the sync-event consumer runs",
            1 if state["status"] != "stopped" else 0,
        )
        yield GaugeMetricFamily(
            "appstore_consumer_ready",
            "1 when the consumer is ready (/readyz)",
            1 if state["ready"] else 0,
        )
        lag = GaugeMetricFamily(
            "appstore_consumer_lag_messages",
            "messages not yet committed by the group: end offset - committed offset",
            labels=["topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "appstore_consumer_committed_offset",
            "the group's committed offset",
            labels=["topic", "partition"],
        )
        end = GaugeMetricFamily(
            "appstore_consumer_end_offset",
            "the partition's end offset",
            labels=["topic", "partition"],
        )
        stalled = GaugeMetricFamily(
            "appstore_consumer_partition_stalled",
            "1 for a partition stopped at a message the consumer cannot read",
            labels=["topic", "partition", "reason"],
        )
        for p in state["partitions"].values():
            topic, partition = p["topic"], str(p["partition"])
            if p["lag"] is not None:
                lag.add_metric([topic, partition], p["lag"])
            if p["committed"] is not None:
                committed.add_metric([topic, partition], p["committed"])
            if p["end"] is not None:
                end.add_metric([topic, partition], p["end"])
            if p["stalled"] is not None:
                stalled.add_metric([topic, partition, p["stalled"]["reason"]], 1)
        yield lag
        yield committed
        yield end
        yield stalled
        yield GaugeMetricFamily(
            "appstore_consumer_stalled_partitions",
            "partitions stopped at a message the consumer cannot read",
            len(state["stalled"]),
        )
