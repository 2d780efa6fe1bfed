"""Benchmark: install+authorize commands through the domain and event store on PostgreSQL,
against raw psycopg single-row INSERT + COMMIT into a comparable table, in the same run.

The store is built as `appstore serve` builds it (its aggregate cache). The raw baseline and
the commands run in alternating slices of half a second, so the load of a shared machine
weighs on both alike. A second baseline does what eventsourcing's append adds around the
INSERT (LOCK TABLE … IN EXCLUSIVE MODE + NOTIFY, for gapless positions): what the event
store's design itself costs, whatever the command path does.

    make bench-append            # starts a throw-away PostgreSQL, runs this, stops it
    python bench/append.py --database-url postgresql://... [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable

import psycopg
from rich.console import Console
from rich.progress import Progress

from application import installations
from application.store import Store
from appstore.bootstrap import API_AGGREGATE_CACHE, build_store
from appstore.settings import Settings
from bench.support import Row, fresh_database, rows_table
from tests import factories as f

console = Console()
SLICE_S = 0.5
STATE = b'{"seller_id":"' + b"x" * 200 + b'"}'


def raw_table(conn: psycopg.Connection[object]) -> None:
    conn.execute(
        "CREATE TABLE raw_events (originator_id uuid, originator_version int, topic text,"
        " state bytea, notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
    )
    conn.commit()


def raw_insert(conn: psycopg.Connection[object]) -> int:
    """Single-row INSERT + COMMIT of an event-sized row: the floor any event store pays."""
    conn.execute(
        "INSERT INTO raw_events VALUES (%s, 1, 'domain.installation:Installation.Installed', %s)",
        (uuid.uuid4(), STATE),
    )
    conn.commit()
    return 1


def raw_locked_insert(conn: psycopg.Connection[object]) -> int:
    """The same row with what eventsourcing's append adds (the table lock, NOTIFY), sent
    as the store sends it: one pipeline, one round trip (`conn` is in autocommit)."""
    with conn.pipeline():
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE raw_events IN EXCLUSIVE MODE")
        conn.execute("NOTIFY raw_events")
        conn.execute(
            "INSERT INTO raw_events VALUES"
            " (%s, 1, 'domain.installation:Installation.Installed', %s)",
            (uuid.uuid4(), STATE),
        )
        conn.execute("COMMIT")
    return 1


class Commands:
    """install + authorize through the domain, each a separate command and transaction.
    Seller sign-ups (one per 40 installs) are set-up: their time is not counted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        developer = f.developer(store)
        self.apps = [f.app(store, developer) for _ in range(40)]
        self.sellers: list[uuid.UUID] = []
        self.i = 0
        self.setup_s = 0.0

    def __call__(self) -> int:
        if self.i % len(self.apps) == 0:
            start = time.perf_counter()
            self.sellers.append(f.seller(self.store))
            self.setup_s += time.perf_counter() - start
        seller, app = self.sellers[-1], self.apps[self.i % len(self.apps)]
        installation = installations.install(
            self.store, seller, app, "90d", "ops@shop.example.com", "+14155550101"
        )
        installations.authorize(self.store, seller, installation.id)
        self.i += 1
        return 2


def interleaved(
    runs: dict[str, Callable[[], int]], seconds: float, progress: Progress
) -> dict[str, tuple[int, float]]:
    """(transactions, seconds) of each run, measured in alternating slices."""
    done = dict.fromkeys(runs, (0, 0.0))
    task = progress.add_task("raw / locked raw / commands, in turns", total=seconds)
    while min(s for _, s in done.values()) < seconds:
        for name, run in runs.items():
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < SLICE_S:
                n += run()
            total, elapsed = done[name]
            done[name] = (total + n, elapsed + time.perf_counter() - start)
        progress.update(task, completed=min(s for _, s in done.values()))
    return done


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", default=os.environ.get("APPSTORE_TEST_POSTGRES_URL"))
    p.add_argument("--seconds", type=float, default=15.0)
    return p


def run(args: argparse.Namespace) -> list[Row]:
    """Committed transactions against committed transactions (one command is one
    transaction, like one raw INSERT+COMMIT, both on the same PostgreSQL with fsync)."""
    if not args.database_url or not args.database_url.startswith("postgres"):
        sys.exit("need --database-url postgresql://... (or run `make bench-append`)")
    url = fresh_database(args.database_url)
    store = build_store(
        Settings(database_url=url, fast_password_hashing=True), aggregate_cache=API_AGGREGATE_CACHE
    )
    commands = Commands(store)
    head = store.head()
    with (
        psycopg.connect(url) as conn,
        psycopg.connect(url, autocommit=True) as locking,
        Progress(console=console) as progress,
    ):
        raw_table(conn)
        done = interleaved(
            {
                "raw": lambda: raw_insert(conn),
                "locked": lambda: raw_locked_insert(locking),
                "commands": commands,
            },
            args.seconds,
            progress,
        )
    # Only install events: the sellers' sign-ups were set-up.
    events = sum(
        1 if ":Installation." in n.topic or ":InstallationSlot." in n.topic else 0
        for n in store.notifications(head + 1, 10_000_000)
    )
    store.close()
    raw_rate = done["raw"][0] / done["raw"][1]
    locked_rate = done["locked"][0] / done["locked"][1]
    command_s = done["commands"][1] - commands.setup_s
    command_rate = done["commands"][0] / command_s
    return [
        Row(
            "append",
            "install / authorize commands (one transaction each)",
            f"{command_rate:,.0f} tx/s",
            f"INSERT+COMMIT {raw_rate:,.0f} tx/s",
            command_rate / raw_rate,
            "≥ 0.5 of raw",
            command_rate / raw_rate >= 0.5,
        ),
        Row(
            "append",
            "  events they stored (2 of 4 are uniqueness claims)",
            f"{events / command_s:,.0f} events/s",
            f"{raw_rate:,.0f} rows/s",
        ),
        Row(
            "append",
            "  the same, against raw with eventsourcing's LOCK TABLE + NOTIFY",
            f"{command_rate:,.0f} tx/s",
            f"locked INSERT+COMMIT {locked_rate:,.0f} tx/s",
            command_rate / locked_rate,
        ),
    ]


def main() -> None:
    args = parser().parse_args()
    console.print(rows_table(run(args), "commands through the event store vs raw transactions"))


if __name__ == "__main__":
    main()
