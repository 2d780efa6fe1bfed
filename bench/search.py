"""Benchmark: catalog search latency (p50/p99) on SQLite and PostgreSQL (text: catalog_text).

Builds a catalog of --apps listed apps (each installed once) through the projections, then
times six kinds of query, each answer being a page of results with its total and facet
counts: one word, two words, a prefix as typed, filters only (a category and two
platforms), sorted without text (popular, new, A-Z), and by rating (the Bayesian score,
with or without a category and a minimum rating; half the apps have a review).

What it measures: `projections.catalog_search.search` itself, uncached. The API keeps answers by
the catalog's position (api/answers.py), so a repeated query would be a dictionary hit:
here every query is distinct, the untimed warm-up queries are others again, and the cache
is not in the path.

The machine is noisy, so each search is followed by a raw baseline through the same
engine (one app row by primary key) and the table shows search ÷ raw as well.

With --serve, distinct queries of the same kinds then go over HTTP to `appstore serve`
on the same database, and the table shows that process's peak RSS (Linux).

    python bench/search.py [--database-url postgresql://...] [--apps 10000 100000] [--serve]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from appstore.bootstrap import build_store
from appstore.settings import Settings
from bench.processes import rss_mb, serving, wait_healthy
from bench.support import Row, fresh_database, percentile, rows_table
from bench.workload import ADJECTIVES, NOUNS, VERBS, append_catalog
from domain import values as v
from projections import catalog, catalog_search
from projections.read_side import build_projector

console = Console(width=150)
KINDS = ("one word", "two words", "prefix", "filters only", "sorted", "by rating")
WARM_UP = 10
REVIEWED_SHARE = 0.5  # of the apps (each installed once) with a review by that seller
GOAL_MS = 20.0


# What a text query comes with besides its words: nothing mostly, else a category, two
# platforms, a sort or a minimum rating.
TEXT_EXTRAS: list[dict[str, Any]] = [{}, {}, {}, {"min_rating": 4.0}]
TEXT_EXTRAS += [{"categories": (c,)} for c in list(v.CATEGORIES)[:3]]
TEXT_EXTRAS += [{"platforms": pair} for pair in list(itertools.combinations(v.PLATFORMS, 2))[:2]]
TEXT_EXTRAS += [{"sort": sort} for sort in ("popular", "new", "name", "rating")]


def candidates(kind: str) -> list[catalog_search.CatalogQuery]:
    """Every distinct query of one kind (the run draws from these without repeating)."""
    query = catalog_search.CatalogQuery
    pages = (1, 1, 2, 5)  # first pages are the common case; duplicates dropped below
    if kind == "one word":
        out = [query(q=noun, page=p, **x) for noun in NOUNS for p in pages for x in TEXT_EXTRAS]
    elif kind == "two words":
        phrases = [f"{a} {n}" for a in ADJECTIVES for n in NOUNS]
        phrases += [f"{verb} {n}s" for verb in VERBS for n in NOUNS]
        out = [query(q=words, **x) for words in phrases for x in TEXT_EXTRAS]
    elif kind == "prefix":
        typed = {n[:k] for n in NOUNS for k in (3, 4, 5) if len(n) > k}
        out = [
            query(q=prefix, page=p, **x)
            for prefix in sorted(typed)
            for p in pages
            for x in TEXT_EXTRAS
        ]
    elif kind == "filters only":
        out = [
            query(categories=(c,), platforms=pair)
            for c in v.CATEGORIES
            for pair in itertools.combinations(v.PLATFORMS, 2)
        ]
    elif kind == "by rating":
        out = [
            query(sort="rating", page=p, categories=() if c is None else (c,), min_rating=least)
            for least in (None, 4.0, 4.5)
            for p in (1, 2, 3, 4, 5)
            for c in (None, *v.CATEGORIES)
        ]
    else:
        out = [
            query(sort=sort, page=p, categories=() if c is None else (c,))
            for sort in ("popular", "new", "name")
            for p in (1, 2, 3, 4, 5)
            for c in (None, *v.CATEGORIES)
        ]
    return list(dict.fromkeys(out))


def mix(
    rng: random.Random, per_kind: int, exclude: frozenset[Any] = frozenset()
) -> tuple[list[Any], list[tuple[str, Any]]]:
    """(warm-up queries, timed (kind, query) pairs in random order); no query twice, and
    none of `exclude` (another run's warm-up) among either: a warm-up query is never timed."""
    warm_up: list[Any] = []
    timed: list[tuple[str, Any]] = []
    for kind in KINDS:
        pool = [q for q in candidates(kind) if q not in exclude]
        rng.shuffle(pool)
        if len(pool) < WARM_UP + per_kind:
            raise SystemExit(f"only {len(pool)} distinct {kind!r} queries")
        warm_up += pool[:WARM_UP]
        timed += [(kind, q) for q in pool[WARM_UP : WARM_UP + per_kind]]
    rng.shuffle(timed)
    assert not {q for _, q in timed} & (set(warm_up) | exclude)
    return warm_up, timed


def build(label: str, url: str, apps: int, progress: Progress, every_projection: bool) -> Any:
    """Appends the catalog and brings the projections to the head; returns the projector."""
    store = build_store(Settings(database_url=url))
    total = round(apps * (3 + 2 * REVIEWED_SHARE))
    task = progress.add_task(f"{label}: append {apps:,} apps", total=total)
    append_catalog(
        store,
        apps=apps,
        installs_per_app=1,
        reviewed_share=REVIEWED_SHARE,
        on_batch=lambda n: progress.advance(task, n),
    )
    names = None if every_projection else ["catalog"]
    projector = build_projector(store, url, names=names, batch_size=2000)
    task = progress.add_task(f"{label}: project", total=projector.head())
    projector.catch_up(on_progress=lambda r: progress.update(task, completed=max(r.position, 0)))
    store.close()
    if projector.engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load: statistics and the visibility map.
        with projector.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return projector


def time_search(
    engine: sa.Engine,
    warm_up: list[Any],
    timed: list[tuple[str, Any]],
    progress: Progress,
    label: str,
) -> dict[str, Any]:
    """Per kind: search latencies, the raw lookups timed right after each, match counts."""
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.select(catalog.apps.c.id))]
    rng = random.Random(13)

    def timed_call(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        with engine.connect() as conn:
            result = fn(conn, *args)
        return (time.perf_counter() - started) * 1000, result

    def by_key(conn: sa.Connection, app_id: Any) -> Any:
        return conn.execute(sa.select(catalog.apps).where(catalog.apps.c.id == app_id)).first()

    # The first text query builds the serving process's text index (catalog_text).
    first_text_ms, _ = timed_call(catalog_search.search, next(q for q in warm_up if q.terms))
    for q in warm_up:  # untimed: caches, connection pool, statement compilation
        timed_call(catalog_search.search, q)
    out: dict[str, Any] = {k: {"search": [], "raw": [], "total": []} for k in KINDS}
    out["first text"] = first_text_ms
    task = progress.add_task(f"{label}: search", total=len(timed))
    for kind, q in timed:
        ms, page = timed_call(catalog_search.search, q)
        raw_ms, _ = timed_call(by_key, rng.choice(ids))
        out[kind]["search"].append(ms)
        out[kind]["raw"].append(raw_ms)
        out[kind]["total"].append(page.total)
        progress.advance(task)
    return out


def params(q: catalog_search.CatalogQuery) -> dict[str, Any]:
    return {
        k: val
        for k, val in {
            "q": q.q,
            "category": list(q.categories),
            "platform": list(q.platforms),
            "sort": q.sort,
            "min_rating": q.min_rating,
            "page": q.page,
        }.items()
        if val
    }


def time_serve(
    url: str, per_kind: int, progress: Progress, label: str, exclude: frozenset[Any]
) -> dict[str, Any]:
    """HTTP latencies of distinct queries against `appstore serve`, and its RSS (peak:
    the kernel's high-water mark of the process over the whole run)."""
    log = Path(tempfile.mkdtemp(prefix="bench-search-serve-")) / "serve.log"
    with serving(url, log) as (server, base), httpx.Client(base_url=base, timeout=30) as client:
        wait_healthy(base, server, log, 120)
        started_rss, _ = rss_mb(server.pid)
        warm_up, timed = mix(random.Random(12), per_kind, exclude)
        for q in warm_up:
            client.get("/v1/apps", params=params(q)).raise_for_status()
        latencies: list[float] = []
        task = progress.add_task(f"{label}: HTTP", total=len(timed))
        for _, q in timed:
            started = time.perf_counter()
            client.get("/v1/apps", params=params(q)).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            progress.advance(task)
        rss, peak = rss_mb(server.pid)
    return {"http": latencies, "rss_start": started_rss, "rss": rss, "rss_peak": peak}


def rows_of(label: str, apps: int, timings: dict[str, Any]) -> Iterator[list[str]]:
    everything: dict[str, list[float]] = {"search": [], "raw": []}
    for kind in (*KINDS, "all"):
        if kind == "all":
            t = everything
            matches = ""
        else:
            t = timings[kind]
            everything["search"] += t["search"]
            everything["raw"] += t["raw"]
            matches = f"{sum(t['total']) / len(t['total']):,.0f}"
        p50, p99 = percentile(t["search"], 50), percentile(t["search"], 99)
        r50, r99 = percentile(t["raw"], 50), percentile(t["raw"], 99)
        yield [
            label if kind == KINDS[0] else "",
            f"{apps:,}" if kind == KINDS[0] else "",
            kind,
            matches,
            f"{p50:.1f}",
            f"{p99:.1f}",
            f"{r50:.2f} / {r99:.2f}",
            f"{p50 / r50:.0f}× / {p99 / r99:.0f}×",
            "yes" if p99 < GOAL_MS else "NO",
        ]


def measure(label: str, url: str, apps: int, args: argparse.Namespace, progress: Progress) -> Any:
    projector = build(label, url, apps, progress, every_projection=args.serve)
    warm_up, timed = mix(random.Random(11), args.per_kind)
    timings = time_search(projector.engine, warm_up, timed, progress, label)
    with projector.engine.connect() as conn:
        combinations = conn.execute(
            sa.select(sa.func.count()).select_from(catalog.facet_counts)
        ).scalar()
    projector.engine.dispose()
    served = (
        time_serve(url, args.per_kind, progress, label, frozenset(warm_up)) if args.serve else None
    )
    return timings, combinations, served


def summary(label: str, apps: int, timings: dict[str, Any], served: Any) -> list[Row]:
    """The shared rows: all kinds together against the raw lookup, the worst kind, serve."""
    every = [ms for kind in KINDS for ms in timings[kind]["search"]]
    raw = [ms for kind in KINDS for ms in timings[kind]["raw"]]
    p99, raw99 = percentile(every, 99), percentile(raw, 99)
    worst = max(KINDS, key=lambda k: percentile(timings[k]["search"], 99))
    worst99 = percentile(timings[worst]["search"], 99)
    name = f"search {apps // 1000}k" if apps >= 1000 else f"search {apps}"
    rows = [
        Row(
            name,
            f"{label}: p50 / p99, {len(every)} distinct queries (6 kinds)",
            f"{percentile(every, 50):.1f} / {p99:.1f} ms",
            f"PK lookup p99 {raw99:.2f} ms",
            p99 / raw99,
            f"p99 < {GOAL_MS:.0f} ms (ratio: latency ÷ raw)",
            p99 < GOAL_MS,
        ),
        Row(name, f"  slowest kind: {worst}", f"p99 {worst99:.1f} ms", met=worst99 < GOAL_MS),
    ]
    if served:
        http = served["http"]
        rows.append(
            Row(
                name,
                f"  over HTTP to `appstore serve`, {len(http)} queries (none a warm-up)",
                f"{percentile(http, 50):.1f} / {percentile(http, 99):.1f} ms",
            )
        )
        rows.append(
            Row(
                name,
                "  peak RSS of `appstore serve` (VmHWM) during that run",
                f"{served['rss_peak']:.0f} MB",
                f"{served['rss_start']:.0f} MB after start-up",
            )
        )
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", default=os.environ.get("APPSTORE_TEST_POSTGRES_URL"))
    p.add_argument("--apps", type=int, nargs="+", default=[10_000])
    p.add_argument("--per-kind", type=int, default=80, help="timed queries per kind")
    p.add_argument("--serve", action="store_true", help="also query `appstore serve`")
    p.add_argument(
        "--backends",
        nargs="+",
        choices=("sqlite", "postgresql"),
        default=["sqlite", "postgresql"],
        help="which engines (PostgreSQL only with a --database-url)",
    )
    return p


def run(args: argparse.Namespace) -> list[Row]:
    """Prints the per-kind table; returns the shared rows."""
    table = Table(title=f"catalog search, uncached, {args.per_kind} distinct queries per kind (ms)")
    for column in (
        "backend",
        "apps",
        "kind",
        "mean total",
        "p50",
        "p99",
        "raw PK lookup p50 / p99",
        "search ÷ raw p50 / p99",
        f"p99 < {GOAL_MS:.0f} ms",
    ):
        table.add_column(column, justify="right")
    notes = []
    out: list[Row] = []
    with Progress(console=console) as progress:
        for apps in args.apps:
            backends = []
            with tempfile.TemporaryDirectory() as tmp:
                if "sqlite" in args.backends:
                    backends.append(("SQLite", f"sqlite:///{tmp}/bench.db"))
                if "postgresql" in args.backends and args.database_url:
                    url = fresh_database(args.database_url, "search")
                    backends.append(("PostgreSQL", url))
                elif "postgresql" in args.backends:
                    console.print("[yellow]no PostgreSQL URL: SQLite only[/yellow]")
                for label, url in backends:
                    timings, combinations, served = measure(label, url, apps, args, progress)
                    for row in rows_of(label, apps, timings):
                        table.add_row(*row, end_section=row[2] == "all")
                    out += summary(label, apps, timings, served)
                    notes.append(
                        f"{label}, {apps:,} apps: {combinations:,} rows of catalog_facet_counts;"
                        f" first text search (builds the text index): {timings['first text']:,.0f} ms"
                    )
                    if served:
                        http = served["http"]
                        notes.append(
                            f"{label}, {apps:,} apps, appstore serve: HTTP p50"
                            f" {percentile(http, 50):.1f} / p99 {percentile(http, 99):.1f} ms"
                            f" over {len(http)} distinct queries; RSS {served['rss_start']:.0f}"
                            f" MB after start-up, {served['rss']:.0f} MB after, peak"
                            f" {served['rss_peak']:.0f} MB"
                        )
    console.print(table)
    for note in notes:
        console.print(note)
    return out


def main() -> None:
    console.print(rows_table(run(parser().parse_args()), "catalog search"))


if __name__ == "__main__":
    main()
