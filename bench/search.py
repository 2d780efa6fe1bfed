"""Benchmark: catalog search latency (p50/p99) on SQLite FTS5 and PostgreSQL tsvector + GIN.

Builds a catalog of --apps listed apps (each installed once) through the projections, then
times a mix of searches (words, prefixes, category/platform filters, every sort, pages 1-5,
with facets) against a raw baseline measured in the same run: fetching one app row by
primary key through the same engine. The last column replays the same mix through the
API's answer cache (keyed by the catalog's position; misses included).

    python bench/search.py [--database-url postgresql://...] [--apps 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from api.answers import AnswerCache
from appstore.bootstrap import build_store
from appstore.settings import Settings
from bench.support import fresh_database, percentile
from bench.workload import ADJECTIVES, NOUNS, VERBS, append_catalog
from domain import values as v
from projections import catalog
from projections.read_side import build_projector

console = Console(width=150)
QUERIES = 400


def queries(rng: random.Random, n: int) -> list[catalog.CatalogQuery]:
    out = []
    for _ in range(n):
        kind = rng.random()
        words = rng.choice(
            [
                rng.choice(NOUNS),
                rng.choice(NOUNS)[:4],  # prefix, as typed
                f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}",
                f"{rng.choice(VERBS)} {rng.choice(NOUNS)}s",
            ]
        )
        out.append(
            catalog.CatalogQuery(
                q=words if kind < 0.7 else None,
                categories=tuple(rng.sample(list(v.CATEGORIES), 1)) if kind > 0.5 else (),
                platforms=tuple(rng.sample(list(v.PLATFORMS), 2)) if kind > 0.8 else (),
                sort=rng.choice([None, None, "popular", "new", "name", "relevant"]),
                page=rng.choice([1, 1, 1, 2, 5]),
                page_size=20,
            )
        )
    return out


def run(label: str, url: str, apps: int, progress: Progress) -> list[str]:
    store = build_store(Settings(database_url=url))
    task = progress.add_task(f"{label}: append {apps:,} apps", total=apps * 3)
    append_catalog(
        store, apps=apps, installs_per_app=1, on_batch=lambda n: progress.advance(task, n)
    )
    projector = build_projector(store, url, names=["catalog"], batch_size=2000)
    head = projector.head()
    task = progress.add_task(f"{label}: project", total=head)
    projector.catch_up(on_progress=lambda r: progress.update(task, completed=max(r.position, 0)))
    if projector.engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load: statistics and the visibility map.
        with projector.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    with projector.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(sa.select(catalog.apps.c.id))]
    rng = random.Random(11)
    mix = queries(rng, QUERIES)
    engine = projector.engine

    def timed(fn: object) -> float:
        started = time.perf_counter()
        with engine.connect() as conn:
            fn(conn)  # type: ignore[operator]
        return (time.perf_counter() - started) * 1000

    for q in mix[:20]:  # warm caches
        timed(lambda c, q=q: catalog.search(c, q))
    task = progress.add_task(f"{label}: search", total=QUERIES)
    search_ms = []
    for q in mix:
        search_ms.append(timed(lambda c, q=q: catalog.search(c, q)))
        progress.advance(task)
    # The API's path: answers cached by catalog position (the same mix, cold cache first).
    cache = AnswerCache("catalog")
    cached_ms = [
        timed(lambda c, q=q: cache.answer(c, ("search", q), lambda c2, q=q: catalog.search(c2, q)))
        for q in mix
    ]
    raw_ms = []
    for app_id in rng.sample(ids, min(QUERIES, len(ids))):
        raw_ms.append(
            timed(
                lambda c, i=app_id: c.execute(
                    sa.select(catalog.apps).where(catalog.apps.c.id == i)
                ).first()
            )
        )
    store.close()
    engine.dispose()
    p50, p99 = percentile(search_ms, 50), percentile(search_ms, 99)
    r50, r99 = percentile(raw_ms, 50), percentile(raw_ms, 99)
    return [
        label,
        f"{apps:,}",
        f"{p50:.2f}",
        f"{p99:.2f}",
        f"{statistics.mean(search_ms):.2f}",
        f"{r50:.2f} / {r99:.2f}",
        f"{p50 / r50:.1f}× / {p99 / r99:.1f}×",
        "yes" if p99 < 20 else "NO",
        f"{percentile(cached_ms, 50):.2f} / {percentile(cached_ms, 99):.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("APPSTORE_TEST_POSTGRES_URL"))
    parser.add_argument("--apps", type=int, nargs="+", default=[10_000])
    args = parser.parse_args()
    rows = []
    with Progress(console=console) as progress:
        for apps in args.apps:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run("SQLite FTS5", f"sqlite:///{tmp}/bench.db", apps, progress))
            if args.database_url:
                url = fresh_database(args.database_url, "search")
                rows.append(run("PostgreSQL GIN", url, apps, progress))
            else:
                console.print("[yellow]no PostgreSQL URL: SQLite only[/yellow]")
    table = Table(title=f"catalog search latency, {QUERIES} mixed queries each (ms)")
    for column in (
        "backend",
        "apps",
        "p50",
        "p99",
        "mean",
        "raw PK lookup p50 / p99",
        "search ÷ raw",
        "p99 < 20 ms",
        "API path (position cache) p50 / p99",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
