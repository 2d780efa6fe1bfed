"""Writes the token-check facts a store written by an older release lacks (`appstore migrate`).

Appends keep the facts of tokens, grants and installations that can have tokens beside the
log (application/access_facts.py). A store written before they were kept has none: each
check of such a token replays its token, grant and installation from the log until one of
them is saved again. `backfill` writes the missing rows, and those left behind their
aggregate (a writer that kept none): first each issued token's, then those of the
installations and grants token rows name. A row written here loses to a newer one an append
writes meanwhile (newer versions win), and is never believed once its aggregate moves on
without it, so it may run while the store is in use. Idempotent: a second run writes none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from application import access_facts
from application.store import Store
from domain.installation import Installation
from domain.oauth import IssuedToken, TokenGrant

BATCH = 500
# (done, total) after each batch written
Progress = Callable[[int, int], None]


def backfill(store: Store, progress: Progress | None = None) -> int:
    """Writes the rows missing or behind; answers how many (0 where the log keeps none)."""
    recorder: Any = store.application.recorder
    if not getattr(recorder, "keeps_facts", False):
        return 0
    tokens = recorder.without_current_facts([get_topic(IssuedToken.Issued)])
    wanted: list[tuple[UUID, type[Aggregate]]] = [(t, IssuedToken) for t in tokens]
    written = _write(store, recorder, wanted, progress, 0, len(wanted))
    installations, grants = recorder.referenced_by_token_facts()
    wanted = [(i, Installation) for i in recorder.without_current_facts([], installations)]
    wanted += [(g, TokenGrant) for g in recorder.without_current_facts([], grants)]
    return written + _write(store, recorder, wanted, progress, written, written + len(wanted))


def _write(
    store: Store,
    recorder: Any,
    wanted: Sequence[tuple[UUID, type[Aggregate]]],
    progress: Progress | None,
    before: int,
    total: int,
) -> int:
    """Loads the wanted aggregates and writes their rows, a batch at a time."""
    written = 0
    for start in range(0, len(wanted), BATCH):
        loaded = [store.load(i, kind) for i, kind in wanted[start : start + BATCH]]
        rows = access_facts.rows(a for a in loaded if a is not None)
        if rows:
            recorder.write_facts(rows)
        written += len(rows)
        if progress is not None:
            progress(before + start + len(loaded), total)
    return written
