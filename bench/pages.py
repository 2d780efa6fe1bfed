"""Benchmark: server time per web page at --apps listed apps, against GET /healthz.

Builds a catalog of --apps apps (each installed once) through the projections, then sends
each page's requests one at a time straight to the ASGI app (no sockets, no client
parsing): the time measured is the server's own, routing + handler + queries + template.
The baseline, measured in the same run the same way, is GET /healthz (the framework alone).
Searches, filters and app slugs vary per request, so most reads miss the answer cache.

    python bench/pages.py [--apps 2000] [--requests 300] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from application import accounts
from appstore.bootstrap import build_store, create_app
from appstore.settings import Settings
from bench.workload import NOUNS, append_catalog, fresh_postgres_database
from domain import values as v
from web.session import COOKIE

console = Console(width=150)
BUDGET_MS = 20.0
WARM_UP = 20

Request = tuple[str, dict[str, str]]  # (path with query, cookies)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def pages(
    rng: random.Random, apps: int, seller_cookie: dict[str, str]
) -> dict[str, Callable[[], Request]]:
    """Each page: a function giving its next request."""
    categories, platforms = list(v.CATEGORIES), list(v.PLATFORMS)

    def slug() -> str:
        return f"app-{rng.randrange(apps)}"

    return {
        "GET /healthz (baseline)": lambda: ("/healthz", {}),
        "home": lambda: ("/", {}),
        "home, search": lambda: (f"/?q={rng.choice(NOUNS)}", {}),
        "home, filters + sort + page": lambda: (
            f"/?category={rng.choice(categories)}&platform={rng.choice(platforms)}"
            f"&sort={rng.choice(['new', 'name', 'popular'])}&page={rng.randint(1, 3)}",
            {},
        ),
        "app detail": lambda: (f"/apps/{slug()}", {}),
        "app detail, seller signed in": lambda: (f"/apps/{slug()}", seller_cookie),
        "sign in": lambda: ("/signin", {}),
    }


async def measure(
    client: httpx.AsyncClient, next_request: Callable[[], Request], n: int
) -> list[float]:
    """Server time (ms) of `n` requests sent one at a time, after a warm-up."""
    times = []
    for i in range(WARM_UP + n):
        path, cookies = next_request()
        client.cookies.clear()
        client.cookies.update(cookies)
        started = time.perf_counter()
        response = await client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
        if i >= WARM_UP:
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300, help="per page")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    if args.database_url and args.database_url.startswith("postgres"):
        url = fresh_postgres_database(args.database_url, "pages")
    else:
        url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='appstore-pages-')}/s.db"
    settings = Settings(database_url=url, fast_password_hashing=True, secret_key="bench")
    store = build_store(settings, aggregate_cache=20_000)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("append catalog", total=args.apps * 3)
        append_catalog(
            store, apps=args.apps, installs_per_app=1, on_batch=lambda n: progress.advance(task, n)
        )
    email = "bench-seller@example.com"
    accounts.register_account(store, "seller", email, "bench-password-1", "Bench Shop", "local")
    seller_cookie = {COOKIE: accounts.start_session(store, email, "bench-password-1").token}
    app = create_app(settings, store=store, run_projections=False)
    app.state.projector.catch_up()

    async def run() -> dict[str, list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            out = {}
            for name, next_request in pages(random.Random(3), args.apps, seller_cookie).items():
                out[name] = await measure(client, next_request, args.requests)
            return out

    results = asyncio.run(run())
    store.close()

    base = statistics.median(results["GET /healthz (baseline)"])
    table = Table(
        title=f"Server time per page ({url.split(':')[0]}, {args.apps:,} apps, "
        f"{args.requests} requests each)"
    )
    for column in (
        "page",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "p50 / healthz",
        f"p99 ≤ {BUDGET_MS:.0f} ms",
    ):
        table.add_column(column, justify="right" if column != "page" else "left")
    for name, times in results.items():
        p50, p99 = statistics.median(times), percentile(times, 99)
        table.add_row(
            name,
            f"{p50:.2f}",
            f"{p99:.2f}",
            f"{statistics.fmean(times):.2f}",
            f"{p50 / base:.1f}x",
            "yes" if p99 <= BUDGET_MS else "NO",
        )
    console.print(table)


if __name__ == "__main__":
    main()
