"""Read-decide-append attempts, retried when another writer got there first.

On PostgreSQL with the aggregate cache, the FIRST attempt of a command decides on the copies
this process keeps without asking the log for newer events (a round trip and the decoding of
its answer per command). Those copies are trusted, not assumed fresh: their versions are
noted (`Reads.trusted`) and the attempt's outcome stands only once the log confirmed that
none of them has an event after the version read:

- an attempt that appends: the append itself checks, in the same statement, under the
  table lock every append takes (application/postgres_log.py), and stores nothing when one
  has — `StaleReads`, which runs the attempt again, like a lost race. (A copy the attempt
  appends to from the version trusted needs no check: the unique (id, version) key
  refuses the append if anything came after that version — an IntegrityError, retried.)
- an attempt that ends without appending (nothing to do, or an error such as "not active"):
  one probe of the log (`stale`) after it; a decision taken on a stale copy is dropped.

Either way a stale decision is tried again, and every attempt after the first reads
everything from the log (the cache fast-forwards each copy, as before). So each command's
outcome is decided on states the log held when it was confirmed — another process's writes
are seen (read-your-writes across processes), and an aggregate only read (a listing
delisted elsewhere) is confirmed too, at the append rather than at the read.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.errors import ConcurrentUpdate

R = TypeVar("R")

# Attempts of a command that lost an optimistic-concurrency race before answering 409.
MAX_ATTEMPTS = 12


class StaleReads(Exception):
    """An append refused because an aggregate the attempt trusted has a newer event.

    Not an IntegrityError: code that takes one for a taken name or a duplicate (a slug
    claim, a notification marked twice) must not take this for one; it goes up to the
    attempt that trusted the copy, which runs again."""


class Reads:
    """What one attempt read: `trusting` (copies may be used as they are) and the
    versions of the copies it trusted that no append has confirmed yet."""

    def __init__(self, trusting: bool) -> None:
        self.trusting = trusting
        self.trusted: dict[UUID, int] = {}

    def trust(self, aggregate_id: UUID, version: int) -> None:
        """Notes a copy used as it is (the oldest version, if the same one comes twice)."""
        self.trusted[aggregate_id] = min(version, self.trusted.get(aggregate_id, version))


class Attempts:
    """The attempt running in each thread (attempts may nest: each has its reads)."""

    def __init__(self, trusting: bool) -> None:
        self.trusting = trusting  # whether appends can confirm trusted copies
        self._local = threading.local()

    def current(self) -> Reads | None:
        """The reads of the attempt this thread runs, if any."""
        reads: Reads | None = getattr(self._local, "reads", None)
        return reads

    def run(self, attempt: Callable[[], R], stale: Callable[[dict[UUID, int]], bool]) -> R:
        """`attempt` until its outcome stands; `stale(versions)` asks the log whether any of
        these aggregates has an event after its version."""
        for tries in range(1, MAX_ATTEMPTS + 1):
            with self._reading(Reads(self.trusting and tries == 1)) as reads:
                try:
                    outcome = attempt()
                except StaleReads:
                    continue  # at once: the next attempt reads from the log
                except IntegrityError:
                    # Jittered backoff so hot writers stop colliding in lock-step (none
                    # after trusting a copy: the refusal may only say that it was stale).
                    if not reads.trusting:
                        time.sleep(random.uniform(0, 0.005 * tries))
                    continue
                except Exception:
                    # Decided on an outdated copy? (A log that cannot say raises its error.)
                    if reads.trusted and stale(reads.trusted):
                        continue
                    raise
                if reads.trusted and stale(reads.trusted):
                    continue  # so was this outcome
                return outcome
        raise ConcurrentUpdate("too many concurrent changes, try again")

    @contextlib.contextmanager
    def _reading(self, reads: Reads) -> Iterator[Reads]:
        outer = self.current()
        self._local.reads = reads
        try:
            yield reads
        finally:
            self._local.reads = outer
