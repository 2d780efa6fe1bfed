"""A projector killed at any point of a step leaves read models that equal a clean replay up
to its tracked position, and resumes to the same rows as a clean replay of the whole log.

The projector runs as its own process (tests/crashing_projector.py) and SIGKILLs itself at
a chosen point: between two row writes, between the rows and the position, just before the
commit, just after it. The log is a rich history with incidents raised, recurring,
acknowledged and resolved (re-applying one of those batches twice changes counts), and it
grows between kills, as it does while a projector runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from projections.db import create_read_engine
from projections.read_side import all_projections, build_projector, snapshot
from projections.runner import Projector
from tests.crashing_projector import NEVER_CAME
from tests.databases import fresh_database
from tests.histories import World, event_counts, random_history

ROOT = Path(__file__).resolve().parents[2]
BATCH = 7
CHILD = "crashing-projector"
# (kind, n): the n-th point of that kind in one run of the projector process. Small n hit
# each projection in turn (catch-up goes round robin), larger ones later in the log.
KILLS = [
    ("position", 1),
    ("row", 2),
    ("commit", 3),
    ("committed", 2),
    ("position", 5),
    ("row", 9),
    ("position", 13),
    ("commit", 8),
    ("row", 31),
    ("committed", 7),
]
# PostgreSQL commits cost a disk flush each: fewer kills there, one of each kind and more.
POSTGRES_KILLS = [KILLS[i] for i in (0, 1, 2, 3, 6)]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _project(url: str, kind: str, nth: int) -> int:
    """Runs the projector process until it kills itself (or reaches the head)."""
    command = [sys.executable, "-m", "tests.crashing_projector", url, str(BATCH), kind, str(nth)]
    env = {**os.environ, "PGAPPNAME": CHILD}  # its PostgreSQL sessions carry this name
    done = subprocess.run(command, cwd=ROOT, env=env, timeout=120, capture_output=True, text=True)
    assert done.returncode in (-signal.SIGKILL, 0, NEVER_CAME), done.stderr[-3000:]
    return done.returncode


def _no_session_left(url: str) -> None:
    """Waits until PostgreSQL has ended the killed process's session (and released its row
    locks), so the next projector does not skip a projection that looks busy."""
    if not url.startswith("postgresql"):
        return
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [CHILD]
            ).fetchone()
            if others is None or others[0] == 0:
                return
            assert time.monotonic() < deadline, "the killed projector's session lingers"
            time.sleep(0.05)


@contextmanager
def _reference(store: Store, url: str) -> Iterator[Projector]:
    """A clean projector writing to another database: the replay to compare with."""
    projector = Projector(store, create_read_engine(url), all_projections(), batch_size=50)
    projector.setup()
    try:
        yield projector
    finally:
        projector.engine.dispose()


def _replay_to(reference: Projector, positions: dict[str, int]) -> None:
    """Steps each projection of the clean replay to exactly this position."""
    for name, position in positions.items():
        while (current := reference.positions()[name]) < position:
            reference.step(name, limit=min(500, position - current))
        assert reference.positions()[name] == position


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_projector_killed_anywhere_in_a_step_leaves_and_resumes_to_a_clean_replay(
    backend: str,
) -> None:
    with fresh_database(backend) as url, fresh_database(backend) as reference_url:
        clock = FixedClock()
        store = build_store(Settings(database_url=url, fast_password_hashing=True), clock=clock)
        world = World(store, clock)
        world.run(random_history(seed=18, length=120))
        counts = event_counts(store)
        assert counts["Installation.IncidentRecurred"] and counts["Installation.IncidentResolved"]
        checker = build_projector(store, url)  # creates the tables, reads positions
        killed = []
        kills = POSTGRES_KILLS if backend == "postgres" else KILLS
        with _reference(store, reference_url) as reference:
            for round_, (kind, nth) in enumerate(kills):
                if round_ % 3 == 2:  # the log grows while projectors come and go
                    world.run(random_history(seed=round_, length=25))
                returncode = _project(url, kind, nth)
                _no_session_left(url)
                killed.append((kind, nth, returncode == -signal.SIGKILL))
                positions = checker.positions()
                # What the killed projector committed is exactly a replay to its positions.
                _replay_to(reference, positions)
                assert snapshot(checker) == snapshot(reference), (kind, nth, positions)

            assert _project(url, "none", 0) == 0
            head = store.head()
            assert checker.positions() == dict.fromkeys(checker.projections, head)
            _replay_to(reference, checker.positions())
            assert snapshot(checker) == snapshot(reference)
        assert all(was_killed for *_, was_killed in killed), killed  # each point came

        resumed = snapshot(checker)
        for name in checker.projections:
            checker.reset(name)
        checker.catch_up()
        assert snapshot(checker) == resumed
        checker.engine.dispose()
        store.close()
