"""Benchmark: projection catch-up and replay on PostgreSQL, against COPY of the same rows.

Appends a log of --events events (apps, installations, authorizations, incidents), then
  1. lets the projector catch up from position 0 (every read model, batches of 500 events
     per transaction);
  2. writes the very rows it produced into empty twins of its tables (same columns and
     indexes) with COPY, as the projector itself writes new rows on PostgreSQL, in as many
     transactions as the projector used — the floor for writing them; ratio = 1 ÷ 2;
  3. replays the log as `appstore replay` does (drop and rebuild each read model, the
     replay batch size), timed.

The "1M replay < 60 s" verdict is given only by a run of at least 1,000,000 real events
(`--events 1000000`); smaller runs (the default, and `make bench`) say they are not it.
Nothing is extrapolated. --replay-only skips 1. and 2. (the long run needs only 3.).

    python -m bench.projection_catchup [--database-url postgresql://...] [--events 60000]
    python -m bench.projection_catchup --events 1000000 --replay-only   # the 1M verdict
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import Progress

from application.store import Store
from appstore import processes
from appstore.bootstrap import build_store
from appstore.settings import Settings
from bench.support import Row, fresh_database, progress_bar, rows_table
from bench.workload import append_catalog
from projections.read_side import build_projector
from projections.runner import Projector

console = Console(width=150)
# One app brings 1 Listed + 3 × (Installed + Authorized) + ~1 incident ≈ 8 events.
EVENTS_PER_APP = 8
CATCH_UP_BATCH = 500
VERDICT_EVENTS = 1_000_000


def fill(store: Store, events: int, progress: Progress) -> int:
    apps = max(1, events // EVENTS_PER_APP)
    task = progress.add_task("append events", total=apps * EVENTS_PER_APP, rate="")
    appended = append_catalog(
        store,
        apps=apps,
        installs_per_app=3,
        incident_every=2,
        on_batch=lambda n: progress.advance(task, n),
    )
    progress.update(task, completed=apps * EVENTS_PER_APP)
    return appended


def catch_up(projector: Projector, head: int, progress: Progress, label: str) -> tuple[float, int]:
    """Seconds to bring every projection from 0 to `head`, and the transactions it took."""
    task = progress.add_task(label, total=head * len(projector.projections), rate="")
    steps = 0

    def advance(result: Any) -> None:
        nonlocal steps
        steps += 1 if result.applied else 0  # one transaction each (the last, empty: none)
        progress.advance(task, result.applied)

    started = time.perf_counter()
    projector.catch_up(on_progress=advance)
    return time.perf_counter() - started, steps


def written_tables(projector: Projector) -> list[str]:
    """Every table the projections write (the PostgreSQL search table included)."""
    names = [t.name for p in projector.projections.values() for t in p.tables]
    with projector.engine.connect() as conn:
        if sa.inspect(conn).has_table("catalog_search"):
            names.append("catalog_search")
    return names


def raw_copy(projector: Projector, transactions: int, progress: Progress) -> tuple[int, float]:
    """COPYs every row the projector wrote into empty twins of its tables (LIKE … INCLUDING
    ALL: same columns, defaults, indexes), split over `transactions` transactions as the
    projector's; returns (rows, seconds)."""
    names = written_tables(projector)
    raw = projector.engine.raw_connection()
    try:
        cursor = raw.cursor()
        data: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for name in names:
            cursor.execute(f'SELECT * FROM "{name}"')
            columns = [d[0] for d in cursor.description]
            rows = [
                tuple(Jsonb(x) if isinstance(x, dict | list) else x for x in row)
                for row in cursor.fetchall()
            ]
            data[name] = (columns, rows)
            cursor.execute(f'CREATE TABLE "raw_{name}" (LIKE "{name}" INCLUDING ALL)')
        raw.commit()
        total = sum(len(rows) for _, rows in data.values())
        transactions = max(1, transactions)
        task = progress.add_task("raw COPY of the same rows", total=total, rate="")
        started = time.perf_counter()
        for k in range(transactions):
            for name, (columns, rows) in data.items():
                size = math.ceil(len(rows) / transactions)
                chunk = rows[k * size : (k + 1) * size]
                if not chunk:
                    continue
                listed = ", ".join(f'"{c}"' for c in columns)
                with cursor.copy(f'COPY "raw_{name}" ({listed}) FROM STDIN') as copy:
                    for row in chunk:
                        copy.write_row(row)
                progress.advance(task, len(chunk))
            raw.commit()
        return total, time.perf_counter() - started
    finally:
        raw.close()


def replay(url: str) -> float:
    """`appstore replay` of every read model (its own progress bars); seconds."""
    started = time.perf_counter()
    processes.replay(Settings(database_url=url), None)
    return time.perf_counter() - started


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", default=os.environ.get("APPSTORE_TEST_POSTGRES_URL"))
    p.add_argument("--events", type=int, default=60_000, help="events in the log")
    p.add_argument(
        "--replay-only",
        action="store_true",
        help="only the replay (skip catch-up and the COPY baseline): for --events 1000000",
    )
    return p


def run(args: argparse.Namespace) -> list[Row]:
    if not args.database_url or not args.database_url.startswith("postgres"):
        raise SystemExit("give --database-url or set APPSTORE_TEST_POSTGRES_URL (PostgreSQL)")
    url = fresh_database(args.database_url, "catchup")
    store = build_store(Settings(database_url=url))
    rows: list[Row] = []
    with progress_bar(console) as progress:
        head = fill(store, args.events, progress)
        projector = build_projector(store, url, batch_size=CATCH_UP_BATCH)
        if not args.replay_only:
            seconds, steps = catch_up(projector, head, progress, "projector catch-up")
            written, raw_seconds = raw_copy(projector, steps, progress)
            rate = head / seconds
            rows.append(
                Row(
                    "catch-up",
                    f"projector from 0, {head:,} events → {written:,} rows, {steps} transactions",
                    f"{seconds:.1f} s = {rate:,.0f} ev/s",
                    f"COPY same rows {raw_seconds:.1f} s",
                    raw_seconds / seconds,
                    "≥ 0.7 of raw",
                    raw_seconds / seconds >= 0.7,
                )
            )
    projector.engine.dispose()
    store.close()
    replay_seconds = replay(url)
    real = head >= VERDICT_EVENTS
    rows.append(
        Row(
            "replay",
            f"`appstore replay` of {head:,} real events"
            + ("" if real else " — NOT the 1M verdict (run --events 1000000)"),
            f"{replay_seconds:.1f} s = {head / replay_seconds:,.0f} ev/s",
            goal="1M events < 60 s" if real else "",
            met=replay_seconds < 60 if real else None,
        )
    )
    return rows


def main() -> None:
    console.print(rows_table(run(parser().parse_args()), "projection catch-up and replay"))


if __name__ == "__main__":
    main()
