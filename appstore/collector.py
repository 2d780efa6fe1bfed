"""How the store's long-running processes use Python's garbage collector.

A full collection walks every container object alive; in a process that keeps many (start-up's
modules, the text index, a replay's rows, a consumer's installations) it costs CPU and stalls
every thread for as long as it runs. Two measures, each measured where it is used:
`fewer_collections` for batch work (a replay, the projector, the Kafka consumer), `freeze_start_up` for a
serving process (what start-up made is never walked again)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The garbage collector runs every 50,000 allocations (not 700) and skips what exists
    already: applying an event allocates dicts by the dozen, and collecting them that often
    cost a fifth of a replay's CPU, 5-8 % of a catch-up's time (`appstore project`) and ~12 %
    of the Kafka consumer's (`appstore consume`). The previous settings come back afterwards."""
    before = gc.get_threshold()
    batch_work_only()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def batch_work_only() -> None:
    """`fewer_collections` for the rest of a process that does batch work only (a
    projector process of a catch-up's lanes, projections/process_lanes.py)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def freeze_start_up() -> None:
    """Everything alive now moves to the collector's permanent generation (`gc.freeze`):
    in `serve`, full collections otherwise walk the ~200,000 objects of start-up (modules,
    the text index) for nothing, a 60-80 ms stall of every request every few seconds at
    200 req/s."""
    gc.collect()
    gc.freeze()
