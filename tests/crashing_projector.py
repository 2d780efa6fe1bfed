"""A projector process that SIGKILLs itself at a chosen point (tests/integration/
test_projector_crashes.py runs it): `python -m tests.crashing_projector URL BATCH KIND N`.

It catches the projections up to the head of the log, as `appstore project` does, and dies
by SIGKILL (no cleanup, no rollback of its own: the database discards what was not
committed) at the N-th point of KIND among:

- `row`: before a statement that writes read-model rows (between rows of one step);
- `position`: before the statement that writes the tracking position (all rows written),
  or right after the step's lock moved it (no row written yet: a step from the position
  this process last saw, `projections.tracking.lock_and_advance`);
- `commit`: when the step's transaction is about to commit (rows and position written);
- `committed`: right after a step's commit, before the next step begins;
- `none`: never (exits 0 at the head).

The points are found by watching the SQL the read-model engine sends (and what the lock
statement, sent past SQLAlchemy, returns), so the projector runs unchanged. Exit status 3 means the point never came (the head was reached first).
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from typing import Any

import sqlalchemy as sa

from appstore.bootstrap import build_store
from appstore.settings import Settings
from projections import runner, tracking
from projections.read_side import build_projector

KINDS = ("row", "position", "commit", "committed", "none")
NEVER_CAME = 3


def arm(engine: sa.Engine, kind: str, nth: int) -> None:
    """SIGKILLs this process at the `nth` point of `kind` (see the module docstring)."""
    seen: Counter[str] = Counter()
    state = {"committed": False}

    def reached(point: str) -> None:
        seen[point] += 1
        if point == kind and seen[point] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split(None, 2)
        verb = words[0].upper() if words else ""
        if verb == "UPDATE" and words[1].strip('"') == "projection_tracking":
            reached("position")
        elif verb in ("INSERT", "UPDATE", "DELETE"):
            reached("row")

    def lock_and_advance(*args: Any, **kwargs: Any) -> tuple[int | None, bool]:
        position, moved = tracking.lock_and_advance(*args, **kwargs)
        if moved:
            reached("position")
        return position, moved

    runner.lock_and_advance = lock_and_advance  # type: ignore[assignment]

    @sa.event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        reached("commit")
        state["committed"] = True

    def after_commit() -> None:
        if state["committed"]:
            state["committed"] = False
            reached("committed")

    # After a commit, either the next step's transaction begins (a round holds its
    # connection for all its steps) or the connection comes back to the pool.
    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        after_commit()

    @sa.event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        after_commit()


def main(url: str, batch: int, kind: str, nth: int) -> int:
    store = build_store(Settings(database_url=url, fast_password_hashing=True))
    projector = build_projector(store, url, batch_size=batch)
    if kind != "none":
        arm(projector.engine, kind, nth)
    projector.catch_up()
    return 0 if kind == "none" else NEVER_CAME


if __name__ == "__main__":
    database_url, batch_size, point, count = sys.argv[1:5]
    assert point in KINDS, point
    sys.exit(main(database_url, int(batch_size), point, int(count)))
