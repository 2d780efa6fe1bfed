"""Benchmark: server time per web page at --apps listed apps, against GET /healthz.

Builds a catalog of --apps apps (each installed once) through the projections, then a
signed-in seller with --mine installations (a third with an open incident, half with an
expiry warning) of a developer's --mine apps, the first app with a webhook and a delivery
log of 1,000 deliveries, and sends each page's requests one at a time straight to the ASGI
app (no sockets, no client parsing): the time measured is the server's own, routing +
handler + queries + template. The baseline, measured in the same run the same way, is
GET /healthz (the framework alone). Searches, filters, apps and installations vary per
request, so most reads miss the answer cache. The last rows are the bench catalog's own
developer, who lists all --apps apps (a stress case, not a typical console).

    python -m bench.pages [--apps 2000] [--mine 20] [--requests 300]
                          [--database-url postgresql://.../postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode
from uuid import UUID

import httpx
from rich.console import Console
from rich.table import Table

from application import accounts, installations, listings, sync_events, webhooks
from application.secret_box import SecretBox
from application.store import Store
from appstore.bootstrap import build_store, create_app
from appstore.settings import Settings
from bench.support import Row, fresh_database, percentile, progress_bar, rows_table
from bench.workload import NOUNS, append_catalog, listing
from domain import values as v
from domain.credentials import new_token, token_hash
from domain.incident import SyncEvent
from domain.installation import Installation
from domain.session import Session
from domain.webhook import TOPICS
from projections import catalog_search
from web.session import COOKIE

console = Console(width=150)
BUDGET_MS = 20.0
WARM_UP = 20
WEBHOOK_LOG = 1000  # test events in the bench webhook's delivery log

Request = tuple[str, dict[str, str]]  # (path with query, cookies)


@dataclass(frozen=True)
class Accounts:
    """Who browses: a seller with installations, the developer of those apps, and the
    developer of the whole bench catalog (cookies), with the ids their pages need."""

    seller: dict[str, str]
    developer: dict[str, str]
    catalog_developer: dict[str, str]
    installations: list[UUID]
    apps: list[UUID]
    client_id: str
    webhook: UUID  # of apps[0], with a delivery log of WEBHOOK_LOG test events
    deliveries: list[UUID]


def signed_in(store: Store, email: str, password: str) -> dict[str, str]:
    return {COOKIE: accounts.start_session(store, email, password).token}


def accounts_with_apps(store: Store, apps: int, mine: int, catalog_developer: UUID) -> Accounts:
    """A developer listing `mine` apps, a seller who installed them all (every third with an
    open incident), and a session for the catalog's own developer."""
    password = "bench-password-1"
    seller = accounts.register_account(
        store, "seller", "bench-seller@example.com", password, "Bench Shop", "local"
    ).id
    developer = accounts.register_account(
        store, "developer", "bench-dev@example.com", password, "Bench Dev"
    ).id
    rng = random.Random(11)
    app_ids, installed = [], []
    for n in range(mine):
        app = listings.list_app(store, developer, dict(listing(rng, apps + n)))
        app_ids.append(app.id)
        duration = "30d" if n % 2 else "unlimited"
        outcome = installations.install(
            store, seller, app.id, duration, "ops@shop.example.com", "+14155550101"
        )
        installations.authorize(store, seller, outcome.id)
        installed.append(outcome.id)
        if n % 3 == 0:
            now = store.clock.now()
            report = SyncEvent(
                f"bench-{n}", outcome.id, "failure", "orders", now, "E_SKU", "unknown SKU",
                [f"o-{i}" for i in range(12)],
            )  # fmt: skip
            sync_events.record_sync_event(store, report)
    # Expiry warnings for the 30-day ones, as a sweep 17 days from now would record them.
    later = store.clock.now() + timedelta(days=17)
    for installation_id in installed[1::2]:
        found = store.load(installation_id, Installation)
        assert found is not None
        found.warn_expiry(later)
        store.save(found)
    # A webhook of the first app with a long delivery log (never sent: no dispatcher here).
    hook = webhooks.subscribe(
        store, SecretBox("bench"), developer, app_ids[0], "https://hooks.example.com/in",
        list(TOPICS),
    ).id  # fmt: skip
    sent = [webhooks.send_test(store, developer, app_ids[0], hook) for _ in range(WEBHOOK_LOG)]
    # The catalog's developer has no password: open a session for it directly.
    token, now = new_token("ses_"), store.clock.now()
    store.save(
        Session(
            token_hash=token_hash(token),
            account_id=catalog_developer,
            role="developer",
            started_at=now,
            expires_at=now + timedelta(hours=1),
        )
    )
    return Accounts(
        seller=signed_in(store, "bench-seller@example.com", password),
        developer=signed_in(store, "bench-dev@example.com", password),
        catalog_developer={COOKIE: token},
        installations=installed,
        apps=app_ids,
        client_id=listings.app(store, app_ids[0]).client_id,
        webhook=hook,
        deliveries=[t.delivery_id for t in sent if t.delivery_id is not None],
    )


def pages(rng: random.Random, apps: int, who: Accounts) -> dict[str, Callable[[], Request]]:
    """Each page: a function giving its next request."""
    categories, platforms = list(v.CATEGORIES), list(v.PLATFORMS)
    seller, developer = who.seller, who.developer

    def slug() -> str:
        return f"app-{rng.randrange(apps)}"

    def mine() -> UUID:
        return rng.choice(who.installations)

    def app() -> UUID:
        return rng.choice(who.apps)

    hooks = f"/developer/apps/{who.apps[0]}/webhooks"
    hook = f"{hooks}/{who.webhook}"
    link = urlencode(
        {
            "client_id": who.client_id,
            "response_type": "code",
            "redirect_uri": "https://partner.example.com/cb",
        }
    )
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
        "app detail, seller signed in": lambda: (f"/apps/{slug()}", seller),
        "sign in": lambda: ("/signin", {}),
        "install: information": lambda: (f"/apps/{slug()}/install", seller),
        "install now from search: conditions": lambda: (
            f"/apps/{slug()}/install?from=search",
            seller,
        ),
        "authorization link: log in": lambda: (f"/oauth/authorize?{link}", {}),
        "my apps": lambda: ("/my-apps", seller),
        "my apps, status filter": lambda: (
            f"/my-apps?status={rng.choice(['active', 'expiring', 'expired', 'cancelled'])}",
            seller,
        ),
        "my app + incidents": lambda: (f"/my-apps/{mine()}", seller),
        "renew": lambda: (f"/my-apps/{rng.choice(who.installations[1::2])}/renew", seller),
        "cancel confirmation": lambda: (f"/my-apps/{mine()}/cancel", seller),
        "notifications": lambda: ("/notifications", seller),
        "take back a scope: confirmation": lambda: (
            f"/my-apps/{mine()}/scopes/products.write/revoke",
            seller,
        ),
        "developer console": lambda: ("/developer", developer),
        "developer: app, link, credentials": lambda: (f"/developer/apps/{app()}", developer),
        "developer: edit listing": lambda: (f"/developer/apps/{app()}/edit", developer),
        "developer: installations": lambda: ("/developer/installations", developer),
        "developer: incidents": lambda: ("/developer/incidents", developer),
        "developer: webhooks": lambda: ("/developer/webhooks", developer),
        "developer: add a webhook": lambda: (f"{hooks}/new", developer),
        f"developer: delivery log ({WEBHOOK_LOG:,}), a page": lambda: (
            f"{hook}?page={rng.randint(1, WEBHOOK_LOG // 25)}",
            developer,
        ),
        "developer: one delivery": lambda: (
            f"{hook}/deliveries/{rng.choice(who.deliveries)}",
            developer,
        ),
        f"developer console, {apps:,} apps": lambda: ("/developer", who.catalog_developer),
        f"developer: installations, {apps:,} apps": lambda: (
            "/developer/installations",
            who.catalog_developer,
        ),
        f"developer: incidents, {apps:,} apps": lambda: (
            "/developer/incidents",
            who.catalog_developer,
        ),
    }


@dataclass
class Timings:
    wall: list[float]  # ms per request, as a client waits for it
    cpu: list[float]  # ms of this process's CPU per request (all threads): what the page
    # costs, whatever else the machine is doing


async def measure(
    client: httpx.AsyncClient, next_request: Callable[[], Request], n: int
) -> Timings:
    """Server time (ms) of `n` requests sent one at a time, after a warm-up."""
    out = Timings([], [])
    for i in range(WARM_UP + n):
        path, cookies = next_request()
        client.cookies.clear()
        client.cookies.update(cookies)
        started, cpu = time.perf_counter(), time.process_time()
        response = await client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        used = (time.process_time() - cpu) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
        if i >= WARM_UP:
            out.wall.append(elapsed)
            out.cpu.append(used)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--apps", type=int, default=2000)
    p.add_argument("--mine", type=int, default=20, help="the seller's installations")
    p.add_argument("--requests", type=int, default=300, help="per page")
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    return p


def run(args: argparse.Namespace) -> list[Row]:
    """Prints the per-page table; returns the shared rows (the slowest page, the count
    within budget)."""
    if args.database_url and args.database_url.startswith("postgres"):
        url = fresh_database(args.database_url, "pages")
    else:
        url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='appstore-pages-')}/s.db"
    settings = Settings(database_url=url, fast_password_hashing=True, secret_key="bench")
    store = build_store(settings, aggregate_cache=20_000)
    with progress_bar(console) as progress:
        task = progress.add_task("append catalog", total=args.apps * 3, rate="")
        append_catalog(
            store, apps=args.apps, installs_per_app=1, on_batch=lambda n: progress.advance(task, n)
        )
    app = create_app(settings, store=store, run_projections=False)
    app.state.projector.catch_up()
    with app.state.projector.engine.connect() as conn:
        first = catalog_search.find_app(conn, "app-0")
    if first is None:
        raise SystemExit("the bench catalog has no app-0")
    catalog_developer = first.developer_id
    who = accounts_with_apps(store, args.apps, args.mine, catalog_developer)
    app.state.projector.catch_up()

    async def run() -> dict[str, Timings]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            out = {}
            table = pages(random.Random(3), args.apps, who)
            with progress_bar(console) as progress:
                task = progress.add_task("pages", total=len(table), rate="")
                for name, next_request in table.items():
                    progress.update(task, rate=name)
                    out[name] = await measure(client, next_request, args.requests)
                    progress.advance(task)
            return out

    results = asyncio.run(run())
    store.close()

    base = statistics.median(results["GET /healthz (baseline)"].wall)
    table = Table(
        title=f"Server time per page ({url.split(':')[0]}, {args.apps:,} apps, "
        f"{args.requests} requests each)"
    )
    columns = ["page", "p50 ms", "p99 ms", "CPU ms (mean)", "p50 / healthz", f"p99 ≤ {BUDGET_MS:.0f} ms"]  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right" if column != "page" else "left")
    for name, timings in results.items():
        p50, p99 = statistics.median(timings.wall), percentile(timings.wall, 99)
        table.add_row(
            name,
            f"{p50:.2f}",
            f"{p99:.2f}",
            f"{statistics.fmean(timings.cpu):.2f}",
            f"{p50 / base:.1f}x",
            "yes" if p99 <= BUDGET_MS else "NO",
        )
    console.print(table)
    healthz = results["GET /healthz (baseline)"].wall
    timed = {k: t for k, t in results.items() if k != "GET /healthz (baseline)"}
    p99s = {k: percentile(t.wall, 99) for k, t in timed.items()}
    worst = max(p99s, key=lambda k: p99s[k])
    within = sum(1 for ms in p99s.values() if ms <= BUDGET_MS)
    engine = url.split(":")[0].split("+")[0]
    everything = [ms for t in timed.values() for ms in t.wall]
    return [
        Row(
            "pages",
            f"server time, {len(timed)} pages × {args.requests} requests ({engine}, "
            f"{args.apps:,} apps): p50 / p99",
            f"{statistics.median(everything):.1f} / {percentile(everything, 99):.1f} ms",
            f"/healthz p50 {base:.2f} ms",
            statistics.median(everything) / base,
            f"every page p99 ≤ {BUDGET_MS:.0f} ms (ratio: p50 ÷ raw)",
            within == len(timed),
        ),
        Row(
            "pages",
            f"  pages within the budget; slowest p99: {worst}",
            f"{within} of {len(timed)}; {p99s[worst]:.1f} ms",
            f"/healthz p99 {percentile(healthz, 99):.2f} ms",
        ),
    ]


def main() -> None:
    console.print(rows_table(run(parser().parse_args()), "server time per web page"))


if __name__ == "__main__":
    main()
