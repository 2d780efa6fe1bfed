"""Benchmark: token introspection on PostgreSQL against a raw single-row SELECT by primary key.

Measurements in the same run, on the same database:
  raw        psycopg `SELECT state FROM <events table> WHERE originator_id=… AND
             originator_version=1` (one primary-key read, prepared, one connection)
  check      application.tokens.check_access_token: on PostgreSQL one read of the facts
             kept beside the log for the token, its grant and its installation
             (application/access_facts.py), nothing decoded but those
  raw in txn the same SELECT inside BEGIN … COMMIT, as the event store reads
  1 aggregate one `repository.get` of a token aggregate (read + decode + replay)
  introspect what POST /oauth/introspect does: client authentication (the app's
             aggregate) + check_token
  …+cache    the same through the store's aggregate cache (as serve has it): each load
             still fetches newer events (fast-forward), so it stays exact
  busy       check of a token whose installation has thousands of incident events
  uncached   check with the store's token cache off (`Store.remembered`/`current` keep
             nothing), as the first check of a token in a fresh process: the facts read
             keeps nothing in the process anyway; "cold with serve's aggregate cache" the
             same through a store built as serve builds it
  replayed   the check when the log keeps no facts for the token (SQLite, a token issued
             before they were kept, a row left behind by a writer that kept none): the
             token record, grant and installation read from the log and replayed, cold

All --tokens tokens fit the token cache (application.store.REMEMBER entries per process), so
"check" measures the cached path; "uncached" is the same checks with nothing kept.

    scripts/with-services.sh .venv/bin/python bench/introspect.py
    python bench/introspect.py --database-url postgresql://... [--seconds 10] [--tokens 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from rich.console import Console

from api.tokens import introspection
from application import authorization, listings, sync_events, tokens
from application import store as store_module
from application.store import Store
from appstore.bootstrap import build_store, event_store_env
from appstore.settings import Settings
from bench.support import Row, fresh_database, rows_table
from domain import oauth
from domain.credentials import Passwords, token_hash
from domain.incident import SyncEvent
from tests import factories as f

console = Console(width=150)
REDIRECT = "https://ordersync.example.com/oauth/callback"


def issue_tokens(store: Store, count: int) -> tuple[list[str], str, str]:
    """`count` access tokens, each of its own live installation of one app."""
    listed = listings.list_app(store, f.developer(store), f.listing())
    client = tokens.authenticate_client(store, listed.client_id, listed.client_secret)
    access_tokens = []
    for _ in range(count):
        seller = f.seller(store)
        installation = f.active_installation(store, seller, listed.id, "365d")
        request = authorization.check_authorization_request(
            store,
            client_id=listed.client_id,
            redirect_uri=REDIRECT,
            response_type="code",
            scope=None,
            state=None,
            code_challenge=None,
            code_challenge_method=None,
        )
        code = authorization.issue_code(store, seller, installation, request).code
        access_tokens.append(tokens.exchange_code(store, client, code, REDIRECT, None).access_token)
    return access_tokens, listed.client_id, listed.client_secret


def measure(name: str, seconds: float, call: Callable[[], object]) -> dict[str, float]:
    for _ in range(50):  # warm up pools and caches
        call()
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    latencies.sort()
    result = {
        "n": len(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "per_s": len(latencies) / elapsed,
    }
    console.print(
        f"{name:<11} p50 {result['p50_ms']:6.3f} ms   p99 {result['p99_ms']:6.3f} ms   "
        f"{result['per_s']:8.0f} /s   (n={result['n']})"
    )
    return result


def concurrent_rate(threads: int, seconds: float, call: Callable[[], object], name: str) -> float:
    """Checks per second with `threads` callers at once (the pool serves them in parallel)."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            call()
            counts[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    rate = sum(counts) / seconds
    console.print(f"{name:<11} {threads} threads: {rate:8.0f} /s")
    return rate


def busy_installation(store: Store, token: str, reports: int) -> None:
    """Gives the token's installation `reports` connector failure reports (its events grow)."""
    check = tokens.check_access_token(store, token)
    assert check.installation_id is not None
    now = datetime.now(UTC)
    for start in range(0, reports, 100):
        sync_events.record_sync_events(
            store,
            [
                SyncEvent(
                    f"bench-{i}", check.installation_id, "failure", "orders", now, f"E{i % 7}"
                )
                for i in range(start, min(start + 100, reports))
            ],
        )


def uncached(store: Store, call: Callable[[], object]) -> Callable[[], object]:
    """`call` with the store's token cache holding nothing (a cold process, every time):
    what earlier checks kept is forgotten first (REMEMBER = 0 alone kept serving it)."""

    def cold() -> object:
        kept = store_module.REMEMBER
        store_module.REMEMBER = 0
        store.forget()
        try:
            return call()
        finally:
            store_module.REMEMBER = kept

    return cold


def replayed(store: Store, call: Callable[[], object]) -> Callable[[], object]:
    """`call`, cold, with the facts kept beside the log ignored (the aggregates replayed)."""
    cold = uncached(store, call)
    kept = store.access_facts

    def without_facts() -> object:
        store.access_facts = lambda token_id: None  # type: ignore[method-assign]
        try:
            return cold()
        finally:
            store.access_facts = kept  # type: ignore[method-assign]

    return without_facts


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", default=os.environ.get("APPSTORE_TEST_POSTGRES_URL"))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--threads", type=int, default=4, help="also measure with N callers")
    p.add_argument("--reports", type=int, default=2000, help="events of the busy installation")
    return p


def run(args: argparse.Namespace) -> list[Row]:
    if not args.database_url or not args.database_url.startswith("postgres"):
        sys.exit("need --database-url postgresql://... (or APPSTORE_TEST_POSTGRES_URL)")
    url = fresh_database(args.database_url)
    store = build_store(Settings(database_url=url, fast_password_hashing=True))
    # The same database through the store's aggregate cache (as serve has it): every load
    # still asks the database for newer events (fast-forward), so a cancel elsewhere is seen.
    cached = Store(event_store_env(url), passwords=Passwords.fast(), aggregate_cache=20_000)
    console.print(f"issuing {args.tokens} tokens (one installation each)…")
    issued, client_id, secret = issue_tokens(store, args.tokens)
    busy_token = issued.pop()
    console.print(f"giving one installation {args.reports} incident reports…")
    busy_installation(store, busy_token, args.reports)
    table = store.application.recorder.events_table_name  # type: ignore[attr-defined]
    ids = [oauth.token_id_for(token_hash(t)) for t in issued]
    rng = random.Random(7)  # random.choice is thread-safe enough for picking test tokens

    with psycopg.connect(url, autocommit=True) as conn:
        query = f"SELECT state FROM {table} WHERE originator_id = %s AND originator_version = 1"

        def raw() -> object:
            row = conn.execute(query, (rng.choice(ids),), prepare=True).fetchone()
            assert row is not None
            return row

        def raw_in_transaction() -> object:
            # what one aggregate read costs at least: the library reads in a transaction
            with conn.transaction():
                return raw()

        def one_aggregate() -> object:
            return store.application.repository.get(rng.choice(ids))

        def checker(on: Store, token: str | None = None) -> Callable[[], object]:
            def check() -> object:
                verdict = tokens.check_access_token(on, token or rng.choice(issued), "orders.read")
                assert verdict.active, verdict
                return verdict

            return check

        def introspector(on: Store) -> Callable[[], object]:
            def introspect() -> object:
                client = tokens.authenticate_client(on, client_id, secret)
                verdict = tokens.check_token(on, rng.choice(issued), client=client)
                assert verdict.active
                return introspection(verdict, client_id)

            return introspect

        console.print(
            f"PostgreSQL, {args.seconds:.0f} s each, {len(issued)} tokens, random picks;"
            f" all {len(issued)} fit the token cache ({store_module.REMEMBER:,} entries), so"
            " 'check' and 'introspect' are the cached path and 'uncached' reads every"
            " record from the log on every check"
        )
        base = measure("raw SELECT", args.seconds, raw)
        measure("raw in txn", args.seconds, raw_in_transaction)
        measure("1 aggregate", args.seconds, one_aggregate)
        results = {
            "check": measure("check", args.seconds, checker(store)),
            "uncached": measure("uncached", args.seconds, uncached(store, checker(store))),
            "introspect": measure("introspect", args.seconds, introspector(store)),
            "check+cache": measure("check+cache", args.seconds, checker(cached)),
            "introspect+cache": measure("intro+cache", args.seconds, introspector(cached)),
            "uncached+cache": measure(
                "cold+cache", args.seconds, uncached(cached, checker(cached))
            ),
            "replayed": measure("replayed", args.seconds, replayed(cached, checker(cached))),
        }
        console.print(f"a busy installation ({args.reports} incident reports in its stream):")
        results["busy check"] = measure("busy", args.seconds, checker(store, busy_token))
        results["busy uncached"] = measure(
            "busy uncach", args.seconds, uncached(store, checker(store, busy_token))
        )
        results["busy check+cache"] = measure(
            "busy+cache", args.seconds, checker(cached, busy_token)
        )
        results["busy uncached+cache"] = measure(
            "busy cold+c", args.seconds, uncached(cached, checker(cached, busy_token))
        )
        if args.threads > 1:
            concurrent_rate(args.threads, args.seconds, checker(store), "check")
            concurrent_rate(args.threads, args.seconds, checker(cached), "check+cache")
    for name, result in results.items():
        console.print(
            f"{name:<17} vs raw: p50 x{result['p50_ms'] / base['p50_ms']:.1f}, "
            f"throughput {result['per_s'] / base['per_s']:.2f} of raw"
        )
    store.close()
    cached.close()
    raw_label = f"SELECT by key {base['per_s']:,.0f}/s"

    def row(name: str, figure: str, goal: bool = False) -> Row:
        result = results[name]
        ratio = result["per_s"] / base["per_s"]
        return Row(
            "introspect",
            figure,
            f"{result['per_s']:,.0f}/s, p50 {result['p50_ms']:.2f} ms",
            raw_label,
            ratio,
            "≥ 0.3 of raw" if goal else "",
            ratio >= 0.3 if goal else None,
        )

    return [
        row("check", f"token check, cached ({len(issued)} tokens, all fit the cache)", True),
        row("uncached", "token check, uncached (token cache off: cold every time)", True),
        row("uncached+cache", "  the same, cold in a store with serve's aggregate cache"),
        row("replayed", "  cold, no facts kept for the token (replayed, as before)"),
        row("introspect", "POST /oauth/introspect's work (client auth + check), cached"),
        row("busy check", f"check, installation with {args.reports:,} incident events"),
        row("busy uncached", "  the same, uncached (snapshot + events since)"),
        row("busy uncached+cache", "  the same, cold with serve's aggregate cache"),
    ]


def main() -> None:
    console.print(rows_table(run(parser().parse_args()), "token checks vs a raw SELECT by key"))


if __name__ == "__main__":
    main()
