"""Benchmark: install+authorize commands through the domain and event store on PostgreSQL,
against raw psycopg single-row INSERT + COMMIT into a comparable table, in the same run.

    make bench-append            # starts a throw-away PostgreSQL, runs this, stops it
    python bench/append.py --database-url postgresql://... [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

import psycopg
from rich.console import Console
from rich.progress import Progress

from application import installations
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from bench.support import Row, fresh_database, rows_table
from tests import factories as f

console = Console()


def raw_inserts(url: str, seconds: float, progress: Progress) -> tuple[int, float]:
    """Single-row INSERT + COMMIT of event-sized rows: the floor any event store pays."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE raw_events (originator_id uuid, originator_version int, topic text,"
            " state bytea, notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
        )
        conn.commit()
        state = b'{"seller_id":"' + b"x" * 200 + b'"}'
        task = progress.add_task("raw INSERT+COMMIT", total=seconds)
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            conn.execute(
                "INSERT INTO raw_events VALUES (%s, 1, 'domain.installation:Installation.Installed', %s)",
                (uuid.uuid4(), state),
            )
            conn.commit()
            n += 1
            if n % 50 == 0:
                progress.update(task, completed=min(elapsed, seconds))
        progress.update(task, completed=seconds)
        return n, time.perf_counter() - start


def store_commands(store: Store, seconds: float, progress: Progress) -> tuple[int, int, float]:
    """install + authorize through the domain, each a separate command and transaction."""
    developer = f.developer(store)
    apps = [f.app(store, developer) for _ in range(40)]
    sellers: list[uuid.UUID] = []
    head = store.application.recorder.max_notification_id() or 0
    task = progress.add_task("install+authorize", total=seconds)
    commands, start, i = 0, time.perf_counter(), 0
    while (elapsed := time.perf_counter() - start) < seconds:
        if i % len(apps) == 0:
            sellers.append(f.seller(store))
        seller, app = sellers[-1], apps[i % len(apps)]
        installation = installations.install(
            store, seller, app, "90d", "ops@shop.example.com", "+14155550101"
        )
        installations.authorize(store, seller, installation.id)
        commands += 2
        i += 1
        if i % 20 == 0:
            progress.update(task, completed=min(elapsed, seconds))
    elapsed = time.perf_counter() - start
    progress.update(task, completed=seconds)
    # Sign-ups of the sellers happen inside the timed loop too; count only install events.
    events = sum(
        1 if ":Installation." in n.topic or ":InstallationSlot." in n.topic else 0
        for n in store.application.recorder.select_notifications(head + 1, 10_000_000)
    )
    return commands, events, elapsed


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
    store = build_store(Settings(database_url=url, fast_password_hashing=True))
    with Progress(console=console) as progress:
        raw_n, raw_s = raw_inserts(url, args.seconds, progress)
        commands, events, store_s = store_commands(store, args.seconds, progress)
    store.close()
    raw_rate, command_rate = raw_n / raw_s, commands / store_s
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
            f"{events / store_s:,.0f} events/s",
            f"{raw_rate:,.0f} rows/s",
        ),
    ]


def main() -> None:
    args = parser().parse_args()
    console.print(rows_table(run(args), "commands through the event store vs raw transactions"))


if __name__ == "__main__":
    main()
