"""Benchmark: projection catch-up and replay on PostgreSQL, against raw writes of the same rows.

Appends a log of --events events (apps, installations, authorizations, incidents), then
  1. lets the projector catch up from position 0 (every read model, batches of 500 events
     per transaction), untimed: it gives the rows to write and each model's transactions;
  2. --runs times: drops and rebuilds the read models from 0, and after each step of the
     projector (a round steps every read model once: --processes processes each step
     their share of the read models, projections/process_lanes.py, spawned before the
     untimed catch-up of 1., and each steps its share on --lanes connections at once,
     projections/lanes.py; the raw writes of a round's steps come once the round has
     ended, while no step runs and no page is being read ahead) writes that step's share
     of the same rows into empty twins of the tables (same columns and indexes), in a
     transaction of their own, once by a batched INSERT
     (psycopg's executemany: the issue's "raw batched INSERT") and once by COPY (as the
     projector writes new rows on PostgreSQL: the floor). Each model's rows are split over
     as many transactions as the projector used for that model, one statement per table
     in each; JSON cells are sent as text encoded once. The raw writes' time is taken out
     of the catch-up's. Slices taken turn about every few milliseconds weigh the machine's
     other load on both sides alike (whole runs one after the other gave 0.39-0.87 for the
     same code); the ratio shown is the median run's, every run's is listed;
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
import json
import math
import os
import time
from collections.abc import Callable
from statistics import median
from typing import Any

from rich.console import Console
from rich.progress import Progress

from application.store import Store
from appstore import processes
from appstore.bootstrap import build_store, read_side
from appstore.collector import fewer_collections
from appstore.settings import ProjectorSettings, Settings
from bench.support import Row, fresh_database, progress_bar, rows_table
from bench.workload import append_catalog
from projections.runner import DEFAULT_LANES, Projector

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


def catch_up(
    projector: Projector,
    head: int,
    progress: Progress,
    label: str,
    beside: Callable[[str], float] | None = None,
) -> tuple[float, dict[str, int]]:
    """Brings every projection from 0 to `head`; returns the projector's seconds and the
    transactions each projection took. `beside(projection)`, called after each step that
    applied events, does other work and returns the seconds it timed: those are not the
    projector's."""
    task = progress.add_task(label, total=head * len(projector.projections), rate="")
    steps = dict.fromkeys(projector.projections, 0)
    other = 0.0

    def advance(result: Any) -> None:
        nonlocal other
        if result.applied:  # one transaction each (the last, empty: none)
            steps[result.projection] += 1
            if beside is not None:
                other += beside(result.projection)
        progress.advance(task, result.applied)

    started = time.perf_counter()
    with fewer_collections():  # as `appstore project` runs its projector
        projector.catch_up(on_progress=advance)
    return time.perf_counter() - started - other, steps


def written_tables(projector: Projector) -> dict[str, list[str]]:
    """The tables each projection writes."""
    return {name: [t.name for t in p.tables] for name, p in projector.projections.items()}


# JSON cells as the projector sends them to COPY (projections/batch.py): text encoded once.
_json_text = json.JSONEncoder().encode
Rows = dict[str, tuple[list[str], list[tuple[Any, ...]]]]
WAYS = ("INSERT", "COPY")


def read_rows(projector: Projector) -> Rows:
    """Every row of every projection table, as COPY sends them (JSON cells as text)."""
    data: Rows = {}
    raw = projector.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for names in written_tables(projector).values():
            for name in names:
                cursor.execute(f'SELECT * FROM "{name}"')
                columns = [d[0] for d in cursor.description]
                rows = [
                    tuple(_json_text(x) if isinstance(x, dict | list) else x for x in row)
                    for row in cursor.fetchall()
                ]
                data[name] = (columns, rows)
    finally:
        raw.close()
    return data


class Raw:
    """Writes the rows the projector wrote into empty twins of its tables (LIKE … INCLUDING
    ALL: same columns, defaults, indexes), transaction by transaction beside it: after the
    projector's k-th step of a read model, that model's k-th share of its rows (its rows
    split over as many transactions as the projector took for it), once by a batched INSERT
    (psycopg's `executemany`: one pipelined trip per table) and once by COPY (one per
    table), each in a transaction of its own."""

    def __init__(self, projector: Projector, data: Rows, steps: dict[str, int]) -> None:
        self.projector, self.data, self.steps = projector, data, steps
        self.tables = written_tables(projector)
        self.done = dict.fromkeys(steps, 0)
        self.seconds = dict.fromkeys(WAYS, 0.0)
        self.written = 0
        self.raw = projector.engine.raw_connection()
        cursor = self.raw.cursor()
        for name in data:
            for way in WAYS:
                cursor.execute(f'DROP TABLE IF EXISTS "raw_{way}_{name}"')
                cursor.execute(f'CREATE TABLE "raw_{way}_{name}" (LIKE "{name}" INCLUDING ALL)')
        self.raw.commit()

    def __call__(self, projection: str) -> float:
        """The writes of the projector's step just done; the seconds they took."""
        k, transactions = self.done[projection], self.steps[projection]
        self.done[projection] += 1
        if k >= transactions:
            return 0.0
        self.projector.settle()  # the read-ahead's work is the projector's, not ours
        cursor, spent = self.raw.cursor(), 0.0
        for way in WAYS:
            started = time.perf_counter()
            for name in self.tables[projection]:
                columns, rows = self.data[name]
                size = math.ceil(len(rows) / transactions)
                chunk = rows[k * size : (k + 1) * size]
                if not chunk:
                    continue
                listed = ", ".join(f'"{c}"' for c in columns)
                table = f'"raw_{way}_{name}" ({listed})'
                if way == "COPY":
                    with cursor.copy(f"COPY {table} FROM STDIN") as out:
                        for row in chunk:
                            out.write_row(row)
                else:
                    marks = ", ".join(["%s"] * len(columns))
                    cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", chunk)
                self.written += len(chunk) if way == "COPY" else 0
            self.raw.commit()
            took = time.perf_counter() - started
            self.seconds[way] += took
            spent += took
        return spent

    def close(self) -> None:
        self.raw.close()


def interleaved(
    store: Store, url: str, head: int, args: argparse.Namespace, progress: Progress
) -> tuple[list[float], dict[str, list[float]], int, int, int]:
    """A first catch-up (untimed: it gives the rows and each model's transactions; the
    other processes of the catch-up start meanwhile), then `runs` catch-ups from 0, each
    with the raw writes of the same rows done beside it, step by step: (catch-up seconds,
    raw seconds by way, rows, transactions) per run, and the processes used."""
    projector = read_side(store, Settings(database_url=url), batch_size=args.batch)
    projector.lanes = args.lanes
    caught: list[float] = []
    raws: dict[str, list[float]] = {way: [] for way in WAYS}
    written = 0
    with projector.processes(args.processes) as used:
        _, steps = catch_up(projector, head, progress, "projector catch-up (rows to write)")
        data = read_rows(projector)
        for run in range(args.runs):
            for name in projector.projections:
                projector.reset(name)
            raw = Raw(projector, data, steps)
            try:
                label = f"catch-up {run + 1}, raw INSERT and COPY beside"
                seconds, _ = catch_up(projector, head, progress, label, beside=raw)
            finally:
                raw.close()
            caught.append(seconds)
            for way in WAYS:
                raws[way].append(raw.seconds[way])
            written = raw.written
    projector.engine.dispose()
    return caught, raws, written, sum(steps.values()), used


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
    p.add_argument(
        "--batch", type=int, default=CATCH_UP_BATCH, help="events per projector transaction"
    )
    p.add_argument(
        "--runs", type=int, default=3, help="catch-ups with the raw writes beside (median)"
    )
    p.add_argument(
        "--lanes",
        type=int,
        default=DEFAULT_LANES,
        help="connections each process of the timed catch-ups steps read models on at once",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=ProjectorSettings().replay_workers,
        help="processes the timed catch-ups split the read models over (Projector.processes;"
        " default: as `appstore replay`)",
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
        if not args.replay_only:
            caught, raws, written, transactions, used = interleaved(
                store, url, head, args, progress
            )
            for way, goal in (("INSERT", 0.7), ("COPY", None)):
                ratios = sorted(r / c for c, r in zip(caught, raws[way], strict=True))
                middle = ratios[len(ratios) // 2]  # the median run's
                rows.append(
                    Row(
                        "catch-up",
                        f"projector from 0, {head:,} events → {written:,} rows,"
                        f" {transactions} transactions, {used} process(es) of"
                        f" {args.lanes} lane(s); vs batched {way}"
                        f" step by step beside it, median of {args.runs} runs"
                        f" (runs: {', '.join(f'{r:.2f}' for r in ratios)})",
                        f"{median(caught):.1f} s = {head / median(caught):,.0f} ev/s",
                        f"{way} same rows {median(raws[way]):.1f} s",
                        middle,
                        "" if goal is None else f"≥ {goal} of raw",
                        None if goal is None else middle >= goal,
                    )
                )
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
