"""Benchmark: projection catch-up on PostgreSQL versus raw batched INSERT of the same rows.

Appends a log of apps, installations and incidents, then (1) lets the projector catch up
from position 0 (every read model, batches of 500 events per transaction), (2) inserts the
very rows it produced into empty copies of the tables with plain batched INSERTs
(500 rows per executemany, one transaction per batch) — the floor for writing them —
and (3) replays (drop + rebuild, 2000 events per transaction as `appstore replay`), extrapolated to 1,000,000 events
unless --replay-events asks for a real run of that size.

    python bench/projection_catchup.py [--database-url postgresql://...] [--events 60000]
    python bench/projection_catchup.py --replay-events 1000000   # the full-size replay
"""

from __future__ import annotations

import argparse
import os
import time

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from bench.support import fresh_database
from bench.workload import append_catalog
from projections.read_side import build_projector
from projections.runner import Projector

console = Console(width=150)
# One app brings 1 Listed + 3 × (Installed + Authorized) + ~1 incident ≈ 8 events.
EVENTS_PER_APP = 8
REPLAY_BATCH = 2000


def fill(store: Store, events: int, progress: Progress) -> int:
    apps = max(1, events // EVENTS_PER_APP)
    task = progress.add_task("append events", total=apps * EVENTS_PER_APP)
    appended = append_catalog(
        store,
        apps=apps,
        installs_per_app=3,
        incident_every=2,
        on_batch=lambda n: progress.advance(task, n),
    )
    progress.update(task, completed=apps * EVENTS_PER_APP)
    return appended


def catch_up(projector: Projector, head: int, progress: Progress, label: str) -> float:
    task = progress.add_task(label, total=head * len(projector.projections))
    started = time.perf_counter()
    projector.catch_up(on_progress=lambda r: progress.advance(task, r.applied))
    return time.perf_counter() - started


def raw_inserts(projector: Projector, progress: Progress, batch: int = 500) -> tuple[int, float]:
    """Copies every projection table's rows into an empty twin with batched INSERTs."""
    tables = [t for p in projector.projections.values() for t in p.tables]
    with projector.engine.connect() as conn:
        data = {t.name: [dict(r._mapping) for r in conn.execute(sa.select(t))] for t in tables}
        search = [
            tuple(r) for r in conn.exec_driver_sql("SELECT seq, document FROM catalog_search")
        ]
    total = sum(len(rows) for rows in data.values()) + len(search)
    twins = sa.MetaData()
    copies = {t.name: t.to_metadata(twins, name=f"raw_{t.name}") for t in tables}
    with projector.engine.begin() as conn:
        twins.create_all(conn)
        conn.exec_driver_sql("CREATE TABLE raw_catalog_search (LIKE catalog_search INCLUDING ALL)")
    task = progress.add_task("raw batched INSERT", total=total)
    started = time.perf_counter()
    for name, rows in data.items():
        for i in range(0, len(rows), batch):
            with projector.engine.begin() as conn:
                conn.execute(copies[name].insert(), rows[i : i + batch])
            progress.advance(task, len(rows[i : i + batch]))
    raw = projector.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for i in range(0, len(search), batch):
            cursor.executemany(
                "INSERT INTO raw_catalog_search (seq, document) VALUES (%s, %s)",
                search[i : i + batch],
            )
            raw.commit()
            progress.advance(task, len(search[i : i + batch]))
    finally:
        raw.close()
    return total, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("APPSTORE_TEST_POSTGRES_URL"))
    parser.add_argument("--events", type=int, default=60_000, help="log size for catch-up")
    parser.add_argument(
        "--replay-events",
        type=int,
        default=0,
        help="also build a log of this many events and replay it for real (e.g. 1000000)",
    )
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or set APPSTORE_TEST_POSTGRES_URL (PostgreSQL)")

    url = fresh_database(args.database_url, "catchup")
    store = build_store(Settings(database_url=url))
    with Progress(console=console) as progress:
        head = fill(store, args.events, progress)
        projector = build_projector(store, url)
        seconds = catch_up(projector, head, progress, "projector catch-up")
        rows, raw_seconds = raw_inserts(projector, progress)
        for name in projector.projections:
            projector.reset(name)
        projector.batch_size = REPLAY_BATCH  # as `appstore replay` does
        replay_seconds = catch_up(projector, head, progress, "replay (drop + rebuild)")

    rate = head / seconds
    raw_equivalent = head / raw_seconds  # events/s if writing the rows were all it took
    table = Table(title=f"projection catch-up on PostgreSQL, {head:,} events → {rows:,} rows")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("projector catch-up (3 read models)", f"{seconds:.2f} s = {rate:,.0f} events/s")
    table.add_row(
        "raw batched INSERT of the same rows",
        f"{raw_seconds:.2f} s = {rows / raw_seconds:,.0f} rows/s ≈ {raw_equivalent:,.0f} events/s",
    )
    table.add_row("ratio projector / raw (goal ≥ 0.5)", f"{rate / raw_equivalent:.2f}")
    table.add_row(
        "replay (drop + rebuild)", f"{replay_seconds:.2f} s = {head / replay_seconds:,.0f} events/s"
    )
    per_million = replay_seconds / head * 1_000_000
    table.add_row(
        "replay of 1,000,000 events (goal < 60 s)",
        f"{per_million:.0f} s (extrapolated linearly from {head:,} events)",
    )
    if args.replay_events:
        with Progress(console=console) as progress:
            big_url = fresh_database(args.database_url, "replay")
            big_store = build_store(Settings(database_url=big_url))
            big_head = fill(big_store, args.replay_events, progress)
            big = build_projector(big_store, big_url, batch_size=REPLAY_BATCH)
            big_seconds = catch_up(big, big_head, progress, f"replay {big_head:,} events")
        table.add_row(f"replay of {big_head:,} events (measured)", f"{big_seconds:.1f} s")
    console.print(table)


if __name__ == "__main__":
    main()
