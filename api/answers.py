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
    """Least-recently-used answers by (key, position of one projection)."""

    def __init__(self, projection: str, size: int = 4096) -> None:
        self.projection = projection
        self.size = size
        self._answers: OrderedDict[tuple[Hashable, int], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def answer(self, conn: Connection, key: Hashable, compute: Callable[[Connection], Any]) -> Any:
        """The cached answer at the projection's current position, or `compute(conn)`."""
        position = conn.execute(_POSITION, {"projection": self.projection}).scalar()
        slot = (key, int(position or 0))
        with self._lock:
            if slot in self._answers:
                self.hits += 1
                self._answers.move_to_end(slot)
                return self._answers[slot]
            self.misses += 1
        value = compute(conn)
        with self._lock:
            self._answers[slot] = value
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
        family.add_metric([self.cache.projection, "hit"], self.cache.hits)
        family.add_metric([self.cache.projection, "miss"], self.cache.misses)
        yield family
