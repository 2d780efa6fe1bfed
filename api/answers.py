"""A cache of read answers keyed by the read model's position.

A read model is a pure function of the log position it has applied, so an answer computed
at position P is exactly the answer for P: no TTL, no invalidation, never stale for a
client that waited for its own write (its position is part of the key).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection

from projections.runner import tracking

# Built once: SQLAlchemy then computes its cache key once, not on every read.
_POSITION = sa.select(tracking.c.position).where(
    tracking.c.name == sa.bindparam("projection", type_=sa.String())
)


class AnswerCache:
    """Least-recently-used answers at the newest position of one projection.

    Positions only move forward, so an answer kept for an older position would never be
    asked for again: when the position moves, the older answers are dropped at once (kept,
    4,096 answers of ~100 objects each made every full garbage collection of a serving
    process walk ~400,000 dead objects — 100-200 ms stalls under load). For the same reason
    the API keeps its answers as the JSON it sends (bytes: nothing for the collector to walk),
    and object answers (the web pages') go in a small cache of their own."""

    def __init__(self, projection: str, size: int = 4096, name: str | None = None) -> None:
        self.projection = projection
        self.name = name or projection  # the `cache` label on /metrics
        self.size = size
        self._position = -1
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._answers)

    def answer(self, conn: Connection, key: Hashable, compute: Callable[[Connection], Any]) -> Any:
        """The cached answer at the projection's current position, or `compute(conn)`."""
        position = int(conn.execute(_POSITION, {"projection": self.projection}).scalar() or 0)
        with self._lock:
            if position > self._position:
                self._answers.clear()
                self._position = position
            elif position == self._position and key in self._answers:
                self.hits += 1
                self._answers.move_to_end(key)
                return self._answers[key]
            self.misses += 1
        value = compute(conn)
        with self._lock:
            if position == self._position:  # a read that saw an older position: not kept
                self._answers[key] = value
                while len(self._answers) > self.size:
                    self._answers.popitem(last=False)
        return value

    def collector(self) -> Collector:
        """`appstore_answer_cache_total{cache, outcome}` (hit or miss) for /metrics."""
        return _AnswerCacheCollector(self)


class _AnswerCacheCollector(Collector):
    def __init__(self, cache: AnswerCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily(
            "appstore_answer_cache",
            "read answers served from the answer cache (hit) or computed (miss)",
            labels=["cache", "outcome"],
        )
        family.add_metric([self.cache.name, "hit"], self.cache.hits)
        family.add_metric([self.cache.name, "miss"], self.cache.misses)
        yield family
