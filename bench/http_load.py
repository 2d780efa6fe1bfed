"""Benchmark: HTTP latency at a fixed request rate (open loop) against `appstore serve`.

Starts the embedded server (API + in-process projections) on a store holding --apps apps,
then sends a fixed-rate mix — 50 % catalog search, 30 % app detail, 20 % my apps (with a
seller token) — and, in the same run, the same rate of GET /healthz as the raw baseline
(the cost of HTTP + framework alone). Latency is measured from each request's scheduled
send time, so a server falling behind shows up in the figures (no coordinated omission).

    python bench/http_load.py [--rate 200] [--seconds 20] [--apps 2000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from application import accounts
from appstore.bootstrap import build_store
from appstore.settings import Settings
from bench.support import free_port, fresh_database, percentile
from bench.workload import NOUNS, append_catalog
from domain import values as v
from tests import factories as f

console = Console(width=150)


def server_means(base: str) -> dict[str, float]:
    """Mean handling time per route as the server measured it (its Prometheus histogram)."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        for suffix, into in (("_sum{", sums), ("_count{", counts)):
            if line.startswith(f"appstore_http_request_seconds{suffix}"):
                route = line.split('route="', 1)[1].split('"', 1)[0]
                into[route] = into.get(route, 0.0) + float(line.rsplit(" ", 1)[1])
    return {r: sums[r] / counts[r] * 1000 for r in sums if counts.get(r)}


def seed(url: str, apps: int, progress: Progress) -> tuple[list[str], list[str]]:
    """The catalog plus sellers with installations; returns (slugs, seller tokens)."""
    store = build_store(Settings(database_url=url, fast_password_hashing=True))
    task = progress.add_task("append catalog", total=apps * 3)
    append_catalog(
        store, apps=apps, installs_per_app=1, on_batch=lambda n: progress.advance(task, n)
    )
    developer = f.developer(store)
    app_ids = [f.app(store, developer) for _ in range(5)]
    tokens = []
    for _ in range(20):
        seller = f.seller(store)
        for app_id in app_ids:
            f.active_installation(store, seller, app_id)
        email = accounts.account(store, seller).email
        tokens.append(accounts.start_session(store, email, f.PASSWORD).token)
    store.close()
    return [f"app-{n}" for n in range(apps)], tokens


async def load(
    base: str,
    rate: float,
    seconds: float,
    make_request: object,
    progress: Progress,
    label: str,
) -> tuple[list[float], int]:
    """Sends `rate` requests/s for `seconds` (open loop); returns latencies (ms), errors."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    task = progress.add_task(label, total=total)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def one(i: int, scheduled: float) -> None:
            nonlocal errors
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            method, path, params, headers = make_request(i)  # type: ignore[operator]
            try:
                response = await client.request(method, path, params=params, headers=headers)
                if response.status_code >= 400:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)
            progress.advance(task)

        start = time.perf_counter() + 0.2
        await asyncio.gather(*(one(i, start + i / rate) for i in range(total)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--apps", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1, help="API worker processes")
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh embedded SQLite file"
    )
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="appstore-http-bench-")
    if args.database_url and args.database_url.startswith("postgres"):
        url = fresh_database(args.database_url, "http")
    else:
        url = args.database_url or f"sqlite:///{tmp}/store.db"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(5)
    with Progress(console=console) as progress:
        slugs, tokens = seed(url, args.apps, progress)
        env = {
            **os.environ,
            "APPSTORE_DATABASE_URL": url,
            "APPSTORE_FAST_PASSWORD_HASHING": "1",
            "APPSTORE_SERVE_WORKERS": str(args.workers),
        }
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "appstore"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            task = progress.add_task("server catch-up", total=None)
            while time.monotonic() < deadline:
                try:
                    ready = httpx.get(f"{base}/readyz", timeout=2).json()
                    if ready.get("status") == "ok" and all(
                        p["lag"] == 0 for p in ready["projections"].values()
                    ):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.2)
            progress.update(task, total=1, completed=1)

            def mix(i: int) -> tuple[str, str, dict[str, object], dict[str, str]]:
                roll = rng.random()
                if roll < 0.5:
                    params: dict[str, object] = {"q": rng.choice(NOUNS)}
                    if rng.random() < 0.3:
                        params["category"] = rng.choice(list(v.CATEGORIES))
                    return "GET", "/v1/apps", params, {}
                if roll < 0.8:
                    return "GET", f"/v1/apps/{rng.choice(slugs)}", {}, {}
                token = rng.choice(tokens)
                return "GET", "/v1/me/apps", {}, {"Authorization": f"Bearer {token}"}

            def health(i: int) -> tuple[str, str, dict[str, object], dict[str, str]]:
                return "GET", "/healthz", {}, {}

            raw, raw_errors = asyncio.run(
                load(base, args.rate, args.seconds / 2, health, progress, "baseline /healthz")
            )
            mixed, errors = asyncio.run(
                load(base, args.rate, args.seconds, mix, progress, "search/detail/my-apps mix")
            )
            server_side = server_means(base)
        finally:
            server.terminate()
            server.wait(timeout=20)

    table = Table(
        title=f"HTTP at a fixed {args.rate:.0f} req/s ({url.split(':')[0]}, {args.apps:,} apps)"
    )
    for column in ("load", "requests", "errors", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    for label, values, errs in (("raw: GET /healthz", raw, raw_errors), ("mix", mixed, errors)):
        table.add_row(
            label,
            f"{len(values):,}",
            str(errs),
            f"{percentile(values, 50):.2f}",
            f"{percentile(values, 99):.2f}",
            f"{max(values):.1f}",
        )
    console.print(table)
    console.print(
        "server-side mean per route (from /metrics): "
        + ", ".join(f"{route} {ms:.2f} ms" for route, ms in sorted(server_side.items()))
    )
    console.print(
        f"mix ÷ raw: p50 {percentile(mixed, 50) / percentile(raw, 50):.1f}×,"
        f" p99 {percentile(mixed, 99) / percentile(raw, 99):.1f}×;"
        f" goal p99 < 25 ms: {'met' if percentile(mixed, 99) < 25 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
